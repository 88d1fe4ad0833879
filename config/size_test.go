package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/config"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // substring of the error, "" for success
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"512B", 512, ""},
		{"1K", 1 << 10, ""},
		{"1KiB", 1 << 10, ""},
		{"256M", 256 << 20, ""},
		{"256MiB", 256 << 20, ""},
		{"256m", 256 << 20, ""},
		{"256mib", 256 << 20, ""},
		{"1G", 1 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"1 GiB", 1 << 30, ""},
		{" 20GiB ", 20 << 30, ""},
		{"1.5G", 3 << 29, ""},
		{"5TiB", 5 << 40, ""},
		{"5T", 5 << 40, ""},
		{"2P", 2 << 50, ""},
		{"1_000", 1000, ""},
		{"8191P", 8191 << 50, ""},
		{"8192P", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
		{"", 0, "want a number"},
		{"G", 0, "want a number"},
		{"-1", 0, "negative"},
		{"-1G", 0, "negative"},
		{"1GB", 0, `decimal unit "GB" is ambiguous; sizes are binary: write G or GiB`},
		{"1mb", 0, "decimal unit"},
		{"1X", 0, `unknown unit "X"`},
		{"1e3", 0, "unknown unit"},
		{"0.3K", 0, "not a whole number"},
		{"1.2.3M", 0, "not a number"},
		{".", 0, "not a number"},
	} {
		got, err := config.ParseSize(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseSize(%q) = %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseSize(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
		case tc.err != "" && !strings.Contains(err.Error(), `"`+tc.in+`"`):
			t.Errorf("ParseSize(%q) error %q does not quote the input", tc.in, err)
		case got != tc.want:
			t.Errorf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestSizeText(t *testing.T) {
	for _, tc := range []struct {
		size config.Size
		text string
	}{
		{0, "0"},
		{1, "1"},
		{1536, "1536"},
		{config.Size(config.KiB), "1KiB"},
		{config.Size(3 * config.KiB), "3KiB"},
		{config.Size(256 * config.MiB), "256MiB"},
		{config.Size(config.GiB), "1GiB"},
		{config.Size(1024 * config.GiB), "1TiB"},
		{config.Size(5 * config.TiB), "5TiB"},
		{config.Size(config.PiB), "1PiB"},
	} {
		b, err := tc.size.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%d): %v", int64(tc.size), err)
		}
		if got := string(b); got != tc.text {
			t.Errorf("MarshalText(%d) = %q, want %q", int64(tc.size), got, tc.text)
		}
		var back config.Size
		if err := back.UnmarshalText(b); err != nil || back != tc.size {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", b, int64(back), err, int64(tc.size))
		}
	}
	var s config.Size = 5
	if err := s.UnmarshalText(nil); err != nil || s != 0 {
		t.Errorf("UnmarshalText(\"\") = %d, %v; want 0", int64(s), err)
	}
	if _, err := config.Size(-1).MarshalText(); err == nil {
		t.Error("MarshalText(-1) succeeded")
	}
}

func TestDurationText(t *testing.T) {
	var d config.Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.Duration != 90*time.Minute {
		t.Fatalf("UnmarshalText(1h30m) = %v, %v", d, err)
	}
	b, err := d.MarshalText()
	if err != nil || string(b) != "1h30m0s" {
		t.Fatalf("MarshalText = %q, %v; want 1h30m0s", b, err)
	}
	for _, bad := range []string{"", "5", "five minutes"} {
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) succeeded", bad)
		}
	}
}
