package simtest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspec/netspec/conformance"
)

// Fataler is what a property's checks report a failure to: *rapid.T
// while rapid runs the property, Judge's checker when a kept run is
// re-simulated.
type Fataler interface {
	Fatalf(format string, args ...any)
}

// failure carries the first failed check out of the checks, as rapid's
// Fatalf stops an example.
type failure struct{ msg string }

type checker struct{}

func (checker) Fatalf(format string, args ...any) { panic(failure{fmt.Sprintf(format, args...)}) }

// Judge runs a property's checks outside rapid and returns the first
// that failed, nil if none did.
func Judge(checks func(Fataler)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
		}
	}()
	checks(checker{})
	return nil
}

// Resimulator re-simulates a trace a property saved, with today's
// machines, and judges the run as the property does.
type Resimulator func(t *testing.T, tr *conformance.Trace) error

// Regressions re-simulates every trace kept in dir (moved there from
// the failures directory Check writes to), each as a subtest that must
// now pass. Check names a trace after the property that saved it, so the
// resimulator is the one whose property name starts the file's name (the
// longest, if several do). It skips when dir holds no trace.
func Regressions(t *testing.T, dir string, resims map[string]Resimulator) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if len(files) == 0 {
		t.Skip("no regression traces yet")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".ndjson")
		t.Run(name, func(t *testing.T) {
			var resim Resimulator
			best := ""
			for prop, r := range resims {
				if strings.HasPrefix(name, prop) && len(prop) > len(best) {
					best, resim = prop, r
				}
			}
			if resim == nil {
				t.Fatalf("%s: the file name must start with the name of the property that saved it", f)
			}
			tr, err := conformance.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := resim(t, tr); err != nil {
				t.Fatalf("%s fails again: %v", f, err)
			}
		})
	}
}
