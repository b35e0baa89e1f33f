package p2p

import "testing"

// Every peer but the roots has one parent per tree, the parent relation
// is a tree (no cycles, depth logarithmic), and with two trees no peer
// has children in both.
func TestTreeGeometry(t *testing.T) {
	for _, d := range []int{1, 2, 3, 4} {
		for _, n := range []int{1, 2, 3, 5, 7, 8, 10, 31, 100, 1000, 1001} {
			homes := map[int]int{}
			for s := 0; s < d; s++ {
				roots, maxDepth := 0, 0
				children := map[int]int{}
				for id := 1; id <= n; id++ {
					tr := tree{id: id, n: n, d: d}
					if got := tr.at(s, tr.pos(s, id)); got != id {
						t.Fatalf("d=%d n=%d s=%d: at(pos(%d)) = %d", d, n, s, id, got)
					}
					p := tr.parent(s)
					if p == 0 {
						roots++
					} else {
						children[p]++
						if !(tree{id: p, n: n, d: d}).isChild(s, id) {
							t.Fatalf("d=%d n=%d s=%d: %d's parent %d does not count it as a child", d, n, s, id, p)
						}
					}
					depth, x := 0, id
					for x != 0 && depth <= n {
						x = tree{id: x, n: n, d: d}.parent(s)
						depth++
					}
					if depth > n {
						t.Fatalf("d=%d n=%d s=%d: cycle from %d", d, n, s, id)
					}
					maxDepth = max(maxDepth, depth)
				}
				if roots != 1 {
					t.Fatalf("d=%d n=%d s=%d: %d roots", d, n, s, roots)
				}
				for p, k := range children {
					if k > d {
						t.Fatalf("d=%d n=%d s=%d: %d has %d children", d, n, s, p, k)
					}
					homes[p]++
				}
				if d > 1 && maxDepth > 2+log(n, d) {
					t.Fatalf("d=%d n=%d s=%d: depth %d", d, n, s, maxDepth)
				}
			}
			if d == 2 {
				for p, k := range homes {
					if k > 1 {
						t.Fatalf("n=%d: peer %d has children in %d trees", n, p, k)
					}
					if h := (tree{id: p, n: n, d: d}).home(); h < 0 {
						t.Fatalf("n=%d: peer %d has children but no home tree", n, p)
					}
				}
			}
		}
	}
}

func log(n, d int) int {
	k := 0
	for x := 1; x < n; x *= d {
		k++
	}
	return k
}
