package spec_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports would let a machine touch the world or the scheduler.
var forbiddenImports = map[string]string{
	"net":         "sockets belong to impl",
	"net/http":    "sockets belong to impl",
	"os":          "files and processes belong to impl and cmd",
	"os/exec":     "processes belong to cmd",
	"os/signal":   "signals belong to cmd",
	"syscall":     "system calls belong to impl",
	"io/ioutil":   "files belong to impl and cmd",
	"sync":        "a machine is stepped by one goroutine; it needs no locks",
	"sync/atomic": "a machine is stepped by one goroutine; it needs no atomics",
	"math/rand":   "randomness comes from spec.Rand, seeded by the config",
	"crypto/rand": "randomness comes from spec.Rand, seeded by the config",
	"unsafe":      "no",
	"runtime":     "no scheduling from machines",
}

// forbiddenCalls read the clock or wait.
var forbiddenCalls = map[string]bool{
	"time.Now": true, "time.Sleep": true, "time.After": true, "time.Tick": true,
	"time.NewTimer": true, "time.NewTicker": true, "time.AfterFunc": true,
	"time.Since": true, "time.Until": true,
}

// randConstructors are the only math/rand/v2 functions allowed: building
// a seeded source. Package-level functions use a global, unseeded one.
var randConstructors = map[string]bool{"New": true, "NewPCG": true, "NewChaCha8": true, "NewZipf": true}

// TestPurity fails if any package under spec/ can do I/O, read the clock,
// start goroutines, select, or draw unseeded randomness.
func TestPurity(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		local := map[string]string{} // local name -> import path
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbiddenImports[p]; bad {
				t.Errorf("%s imports %q: %s", fset.Position(imp.Pos()), p, why)
			}
			name := p[strings.LastIndex(p, "/")+1:]
			if p == "math/rand/v2" {
				name = "rand"
			}
			if imp.Name != nil {
				name = imp.Name.Name
			}
			local[name] = p
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement: machines are stepped, they do not run", fset.Position(n.Pos()))
			case *ast.SelectStmt:
				t.Errorf("%s: select statement: machines do not wait", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				id, ok := n.X.(*ast.Ident)
				if !ok {
					return true
				}
				switch local[id.Name] {
				case "time":
					if forbiddenCalls["time."+n.Sel.Name] {
						t.Errorf("%s: time.%s: time is passed in", fset.Position(n.Pos()), n.Sel.Name)
					}
				case "math/rand/v2":
					if ast.IsExported(n.Sel.Name) && !randConstructors[n.Sel.Name] && !isType(n.Sel.Name) {
						t.Errorf("%s: rand.%s uses the global source; use spec.Rand", fset.Position(n.Pos()), n.Sel.Name)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 5 {
		t.Fatalf("checked only %d files: is the walk broken?", checked)
	}
}

func isType(name string) bool {
	switch name {
	case "Rand", "PCG", "ChaCha8", "Source", "Zipf":
		return true
	}
	return false
}
