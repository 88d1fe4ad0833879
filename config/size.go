package config

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
)

// Binary size units. Sizes in cryophile are always binary: "M" and "MiB"
// both mean 1<<20 bytes.
const (
	KiB int64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
)

// units maps the accepted unit spellings, lower-cased, to their value.
// Decimal spellings (kb, mb, gb, …) are deliberately absent: "20GB" is
// refused with a hint rather than silently read as 20 GiB or 20×10⁹.
var units = map[string]int64{
	"": 1, "b": 1,
	"k": KiB, "kib": KiB,
	"m": MiB, "mib": MiB,
	"g": GiB, "gib": GiB,
	"t": TiB, "tib": TiB,
	"p": PiB, "pib": PiB,
}

// ParseSize parses a byte count: a non-negative number with an optional
// binary unit, B, K/KiB, M/MiB, G/GiB, T/TiB or P/PiB (case-insensitive,
// optionally separated from the number by blanks). M means MiB (1<<20
// bytes), never 10⁶; decimal units such as "GB" are refused. A fraction is
// accepted when the result is a whole number of bytes ("1.5G"). Examples:
// "1048576", "256M", "256MiB", "1G", "5TiB".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || t[i] == '_') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("size %q: must not be negative", s)
		}
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional binary unit, e.g. 256M, 1GiB, 5T", s)
	}
	mult, ok := units[unit]
	if !ok {
		if len(unit) == 2 && unit[1] == 'b' {
			if _, bin := units[unit[:1]]; bin {
				return 0, fmt.Errorf("size %q: decimal unit %q is ambiguous; sizes are binary: write %s or %siB",
					s, t[i:], strings.ToUpper(unit[:1]), strings.ToUpper(unit[:1]))
			}
		}
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, K, M, G, T or P, optionally as KiB, MiB, …)", s, strings.TrimSpace(t[i:]))
	}
	num = strings.ReplaceAll(num, "_", "")
	r, ok := new(big.Rat).SetString(num)
	if !ok || strings.Count(num, ".") > 1 {
		return 0, fmt.Errorf("size %q: %q is not a number", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return r.Num().Int64(), nil
}

// Size is a byte count written in the configuration as a string with a
// binary unit ("1GiB", "256M", see ParseSize) or as a TOML integer of
// bytes. The empty string is 0.
type Size int64

// UnmarshalText implements encoding.TextUnmarshaler with ParseSize; the
// empty string is 0.
func (s *Size) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = 0
		return nil
	}
	n, err := ParseSize(string(b))
	if err != nil {
		return &valueError{typ: sizeType, text: string(b), err: err}
	}
	*s = Size(n)
	return nil
}

// MarshalText implements encoding.TextMarshaler; the result is what
// String returns and parses back to the same Size.
func (s Size) MarshalText() ([]byte, error) {
	if s < 0 {
		return nil, fmt.Errorf("size %d: negative", int64(s))
	}
	return []byte(s.String()), nil
}

// String formats s with the largest binary unit that divides it exactly:
// 1<<30 is "1GiB", 1536 is "1536", 0 is "0".
func (s Size) String() string {
	n := int64(s)
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		v    int64
	}{{"PiB", PiB}, {"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if n%u.v == 0 {
			return fmt.Sprintf("%d%s", n/u.v, u.name)
		}
	}
	return fmt.Sprintf("%d", n)
}

// Duration is a time.Duration written in the configuration as a Go
// duration string ("90s", "5m", "1h30m"). It is a struct, not a named
// int64, so that a bare TOML integer (`rescan = 300`) is a type error
// instead of silently meaning 300 nanoseconds.
type Duration struct {
	time.Duration
}

// UnmarshalText implements encoding.TextUnmarshaler with
// time.ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return &valueError{typ: durationType, text: string(b),
			err: fmt.Errorf("duration %q: want a number with a unit, e.g. 90s, 5m, 1h30m", b)}
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}

// valueError is an UnmarshalText error; it keeps the text so that Load can
// find the key when go-toml reports the error without a position.
type valueError struct {
	typ  reflect.Type
	text string
	err  error
}

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
