package py

import (
	"math"
	"testing"
)

// The expected texts were printed by CPython 3.
func TestFloatRepr(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{
		{8, "8.0"}, {1e16, "1e+16"}, {1.5e16, "1.5e+16"}, {123456789012345678, "1.2345678901234568e+17"},
		{0.0001, "0.0001"}, {0.00001, "1e-05"}, {1e15, "1000000000000000.0"}, {9999999999999998, "9999999999999998.0"},
		{math.Copysign(0, -1), "-0.0"}, {1.5, "1.5"}, {-100, "-100.0"}, {5e-324, "5e-324"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {math.Inf(-1), "-inf"}, {math.NaN(), "nan"},
	} {
		if got := FloatRepr(c.f); got != c.want {
			t.Errorf("FloatRepr(%v) = %s, want %s", c.f, got, c.want)
		}
	}
}

func TestRepr(t *testing.T) {
	for in, want := range map[string]string{
		"512 1075":    `'512 1075'`,
		"it's":        `"it's"`,
		`a"b'c`:       `'a"b\'c'`,
		"tab\there\n": `'tab\there\n'`,
		"\x00\x7f\x80\u00a0é\u200b\U0001F600\u2028": `'\x00\x7f\x80\xa0é\u200b😀\u2028'`,
		`back\slash`: `'back\\slash'`,
		"":           `''`,
	} {
		if got := Repr(in); got != want {
			t.Errorf("Repr(%q) = %s, want %s", in, got, want)
		}
	}
	if got := ReprList([]string{"a[x] SKIP", "b"}); got != `['a[x] SKIP', 'b']` {
		t.Errorf("ReprList = %s", got)
	}
	if got := ReprList(nil); got != "[]" {
		t.Errorf("ReprList(nil) = %s", got)
	}
}

func TestIntString(t *testing.T) {
	for in, want := range map[string]string{
		"1": "1", " 1_024 ": "1024", "\u00a01\u2028": "1", "\u00851": "1", "+7": "7", "-0": "0", "007": "7", "\t12\v": "12",
		"99999999999999999999999": "99999999999999999999999",
	} {
		if got, ok := IntString(in); !ok || got.String() != want {
			t.Errorf("IntString(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"", " ", "+", "1.0", "\x1c1", "1\x1f", "1e3", "_1", "1_", "1__0", "+_1", "0x10", "512 1075", "١"} {
		if got, ok := IntString(in); ok {
			t.Errorf("IntString(%q) = %v, want a refusal", in, got)
		}
	}
}
