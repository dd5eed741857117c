package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// The project runs its tests from its own copy of ../shared (golden cases,
// fixture configs), so that a lone clone passes. Where ../shared exists
// beside the project, the copy must be current: scripts/refresh-shared
// makes it so.
func TestVendoredSharedIsCurrent(t *testing.T) {
	upstream := filepath.Join("..", "shared")
	if _, err := os.Stat(filepath.Join(upstream, "golden")); err != nil {
		t.Skip("no ../shared beside the project: nothing to compare the copy with")
	}
	for _, dir := range []string{"golden", filepath.Join("fixtures", "configs")} {
		want, got := readTree(t, filepath.Join(upstream, dir)), readTree(t, filepath.Join("testdata", "shared", dir))
		for _, name := range sortedKeys(want) {
			g, ok := got[name]
			switch {
			case !ok:
				t.Errorf("testdata/shared/%s/%s is missing (run scripts/refresh-shared)", dir, name)
			case !bytes.Equal(g, want[name]):
				t.Errorf("testdata/shared/%s/%s differs from ../shared (run scripts/refresh-shared)", dir, name)
			}
		}
		for _, name := range sortedKeys(got) {
			if _, ok := want[name]; !ok {
				t.Errorf("testdata/shared/%s/%s is not in ../shared any more (run scripts/refresh-shared)", dir, name)
			}
		}
	}
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("%s holds no files", root)
	}
	return files
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
