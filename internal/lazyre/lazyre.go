// Package lazyre holds regular expressions that are compiled when first
// used rather than when the program starts. Every command pays for package
// initialisation, and the patterns of the config reader, the verdict and
// the perf parser are needed only by the commands that read those things:
// compiled eagerly they cost a few hundred kilobytes of fresh heap (a page
// fault per 4 KiB) even for --version.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled on first use. A pattern that
// does not compile panics then, as regexp.MustCompile would at start-up;
// CompileAll lets a test find such a pattern first.
type Regexp struct {
	src  string
	once sync.Once
	re   *regexp.Regexp
}

var (
	mu  sync.Mutex
	all []*Regexp
)

// New returns src as a Regexp compiled on first use.
func New(src string) *Regexp {
	r := &Regexp{src: src}
	mu.Lock()
	all = append(all, r)
	mu.Unlock()
	return r
}

// CompileAll compiles every Regexp made so far and returns the first
// error, naming its pattern.
func CompileAll() error {
	mu.Lock()
	rs := append([]*Regexp(nil), all...)
	mu.Unlock()
	for _, r := range rs {
		if _, err := regexp.Compile(r.src); err != nil {
			return err
		}
	}
	return nil
}

// Count is how many Regexps have been made.
func Count() int {
	mu.Lock()
	defer mu.Unlock()
	return len(all)
}

func (r *Regexp) get() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.src) })
	return r.re
}

func (r *Regexp) String() string { return r.src }

func (r *Regexp) Match(b []byte) bool { return r.get().Match(b) }

func (r *Regexp) MatchString(s string) bool { return r.get().MatchString(s) }

func (r *Regexp) FindStringIndex(s string) []int { return r.get().FindStringIndex(s) }

func (r *Regexp) FindStringSubmatch(s string) []string { return r.get().FindStringSubmatch(s) }

func (r *Regexp) FindSubmatch(b []byte) [][]byte { return r.get().FindSubmatch(b) }

func (r *Regexp) ReplaceAllString(src, repl string) string {
	return r.get().ReplaceAllString(src, repl)
}

func (r *Regexp) ReplaceAllStringFunc(src string, repl func(string) string) string {
	return r.get().ReplaceAllStringFunc(src, repl)
}
