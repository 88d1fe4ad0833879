package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Environment variables read by the configuration.
const (
	// EnvConfig names the configuration file when --config is not given.
	EnvConfig = "CRYOPHILE_CONFIG"
	// EnvSpool overrides the configuration's spool (--spool overrides it).
	EnvSpool = "CRYOPHILE_SPOOL"
)

// SystemFile is the system-wide configuration file.
const SystemFile = "/etc/cryophile/cryophile.toml"

// Load reads the configuration file at path over the defaults, strictly:
// a syntax error, an unknown key, a value of the wrong type or an invalid
// value is an error naming the file, the line and the key, such as
//
//	config /etc/cryophile/cryophile.toml:12: unknown key "backup.compresion" (did you mean "backup.compression"?)
//
// All errors wrap ErrConfig; when there are several they are joined. The
// configuration is validated (see Validate) and relative recipient paths
// are made relative to the file's directory. Load does not read the
// environment; Find does.
func Load(path string) (*Config, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	c, errs := parse(doc)
	for _, e := range errs {
		e.File = path
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	c.file = path
	dir := filepath.Dir(path)
	for i, r := range c.Backup.Recipients {
		if r != "" && !filepath.IsAbs(r) {
			c.Backup.Recipients[i] = filepath.Join(dir, r)
		}
	}
	return c, nil
}

// parse decodes doc over Default() and validates the result. Errors carry
// their line but no file.
func parse(doc []byte) (*Config, []*Error) {
	c := Default()
	dec := toml.NewDecoder(bytes.NewReader(doc)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeErrors(doc, err)
	}
	errs := c.validate()
	if len(errs) > 0 {
		ix := newIndex(doc)
		for _, e := range errs {
			e.Line = ix.line(e.Key)
		}
		return nil, errs
	}
	return c, nil
}

var cannotDecode = regexp.MustCompile(`^cannot decode TOML (.+?) into `)

// decodeErrors turns go-toml's errors into ours.
func decodeErrors(doc []byte, err error) []*Error {
	ix := newIndex(doc)
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		errs := make([]*Error, 0, len(sm.Errors))
		for i := range sm.Errors {
			de := &sm.Errors[i]
			line, _ := de.Position()
			key := ix.at(line, de.Key())
			what := "key"
			if strings.Contains(de.Error(), "table") {
				what = "table"
			}
			msg := fmt.Sprintf("unknown %s %q", what, key)
			if s := suggest(de.Key()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			errs = append(errs, &Error{Line: line, Key: key, Err: errors.New(msg)})
		}
		return errs
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		// go-toml hands a number to UnmarshalText when the target is a
		// struct or the number is a float (rescan = 300, fragment_size =
		// 1.5), and returns the error without a position: find the value.
		var ve *valueError
		if errors.As(err, &ve) {
			if e, ok := ix.value(ve.typ, ve.text); ok {
				msg := ve.Error()
				if ve.typ == durationType && e.kind != unstable.String {
					msg = fmt.Sprintf("wrong type: want %s, not a TOML %s", describe(durationType), strings.ToLower(e.kind.String()))
				}
				return []*Error{{Line: e.line, Key: e.path, Err: fmt.Errorf("%s: %s", e.path, msg)}}
			}
		}
		return []*Error{{Err: err}}
	}
	line, _ := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if len(de.Key()) == 0 {
		return []*Error{{Line: line, Err: fmt.Errorf("syntax error: %s", msg)}}
	}
	key := ix.at(line, de.Key())
	if m := cannotDecode.FindStringSubmatch(msg); m != nil {
		if t, ok := knownKeys[strings.Join(de.Key(), ".")]; ok {
			msg = fmt.Sprintf("wrong type: want %s, not a TOML %s", describe(t), m[1])
		} else {
			msg = fmt.Sprintf("wrong type: a TOML %s is not allowed here", m[1])
		}
	}
	return []*Error{{Line: line, Key: key, Err: fmt.Errorf("%s: %s", key, msg)}}
}

var (
	sizeType     = reflect.TypeFor[Size]()
	durationType = reflect.TypeFor[Duration]()
)

// describe says what TOML value a Go type takes, for type errors.
func describe(t reflect.Type) string {
	switch t {
	case sizeType:
		return `a size such as "256MiB" or "1G", or an integer number of bytes`
	case durationType:
		return `a duration string such as "90s" or "5m"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "tables ([[...]])"
		}
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct, reflect.Map:
		return "a table"
	}
	return t.String()
}

// knownKeys maps every key of Config, as a dotted path without array
// indices ("vault.storage_class"), to its Go type.
var knownKeys = func() map[string]reflect.Type {
	m := make(map[string]reflect.Type)
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			m[key] = f.Type
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != sizeType && ft != durationType {
				walk(key, ft)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return m
}()

// suggest returns the known key closest to the unknown key k, if one is
// close enough to be a typo.
func suggest(k []string) string {
	if len(k) == 0 {
		return ""
	}
	parent := strings.Join(k[:len(k)-1], ".")
	leaf := k[len(k)-1]
	best, bestD := "", 3
	for known := range knownKeys {
		kp, kl := "", known
		if i := strings.LastIndexByte(known, '.'); i >= 0 {
			kp, kl = known[:i], known[i+1:]
		}
		if kp != parent {
			continue
		}
		if d := distance(strings.ToLower(leaf), kl); d < bestD || d == bestD && known < best {
			best, bestD = known, d
		}
	}
	if bestD > len(leaf)/2 {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// index records where each key and table header of a document is, by its
// path with array indices ("vault[1].url"), so that errors found after
// decoding can name a line.
type index struct {
	lines   map[string]int // first line of each path
	entries []indexEntry   // in document order
}

type indexEntry struct {
	path  string // with indices: vault[1].url
	plain string // without: vault.url
	line  int
	kind  unstable.Kind // of the value; Invalid for a table header
	value string        // the value's data (a string's contents, a number's digits)
}

func newIndex(doc []byte) *index {
	ix := &index{lines: make(map[string]int)}
	var p unstable.Parser
	p.Reset(doc)
	arrays := make(map[string]int) // plain path of an array table → tables seen
	var table, plainTable []string // current table header, with and without indices
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		line := 0
		for it := e.Key(); it.Next(); {
			n := it.Node()
			if line == 0 && n.Raw.Length > 0 {
				line = p.Shape(n.Raw).Start.Line
			}
			parts = append(parts, string(n.Data))
		}
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			if e.Kind == unstable.ArrayTable {
				arrays[strings.Join(parts, ".")]++
			}
			table, plainTable = nil, nil
			for _, part := range parts {
				plainTable = append(plainTable, part)
				if n := arrays[strings.Join(plainTable, ".")]; n > 0 {
					part += "[" + strconv.Itoa(n-1) + "]"
				}
				table = append(table, part)
			}
			ix.add(indexEntry{path: strings.Join(table, "."), plain: strings.Join(plainTable, "."), line: line})
		case unstable.KeyValue:
			v := e.Value()
			ix.add(indexEntry{
				path:  strings.Join(append(append([]string(nil), table...), parts...), "."),
				plain: strings.Join(append(append([]string(nil), plainTable...), parts...), "."),
				line:  line,
				kind:  v.Kind,
				value: string(v.Data),
			})
		}
	}
	return ix
}

func (ix *index) add(e indexEntry) {
	ix.entries = append(ix.entries, e)
	if _, ok := ix.lines[e.path]; !ok {
		ix.lines[e.path] = e.line
	}
}

// line returns the line of key, or of its closest enclosing table that the
// document names (a vault's missing storage_class is reported on its
// [[vault]] header), or 0.
func (ix *index) line(key string) int {
	for key != "" {
		if l, ok := ix.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// at returns the indexed path of the key k written on line, falling back
// to the plain dotted path. go-toml leaves the key of an inline table out
// of the paths it reports (k is thaw.prices.GLACIER.per_tb for
// "Bulk = { per_tb = 1.0 }"): it is put back from the line's entry.
func (ix *index) at(line int, k []string) string {
	plain := strings.Join(k, ".")
	for _, e := range ix.entries {
		if e.line == line && e.plain == plain {
			return e.path
		}
	}
	if len(k) > 1 {
		parent := strings.Join(k[:len(k)-1], ".") + "."
		for _, e := range ix.entries {
			if e.line == line && e.kind == unstable.InlineTable && strings.HasPrefix(e.plain, parent) {
				return e.path + "." + k[len(k)-1]
			}
		}
	}
	return plain
}

// value returns the first key of type t whose value is text.
func (ix *index) value(t reflect.Type, text string) (indexEntry, bool) {
	for _, e := range ix.entries {
		if e.kind != unstable.Invalid && e.value == text && knownKeys[e.plain] == t {
			return e, true
		}
	}
	return indexEntry{}, false
}

// Finder finds the configuration file. The zero Finder looks where the
// commands do; tests set its fields.
type Finder struct {
	// UserFile is the per-user file; "" means
	// $XDG_CONFIG_HOME/cryophile/cryophile.toml, else
	// ~/.config/cryophile/cryophile.toml (os.UserConfigDir).
	UserFile string
	// SystemFile is the system-wide file; "" means SystemFile.
	SystemFile string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Find loads the configuration the way every command does: the explicit
// file (from --config) if not "", else $CRYOPHILE_CONFIG if set (both must
// exist), else the first of the user file and the system file that exists,
// else Default(). Then $CRYOPHILE_SPOOL, if set, replaces the spool (see
// ApplyEnv); the caller applies --spool last. It returns the file used (""
// for the defaults). Every error wraps ErrConfig.
func (f Finder) Find(explicit string) (cfg *Config, path string, err error) {
	getenv := f.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	path = explicit
	if path == "" {
		path = getenv(EnvConfig)
	}
	if path == "" {
		system := f.SystemFile
		if system == "" {
			system = SystemFile
		}
		for _, candidate := range []string{f.userFile(), system} {
			if candidate == "" {
				continue
			}
			if _, err := os.Stat(candidate); err == nil {
				path = candidate
				break
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, candidate, &Error{File: candidate, Err: err}
			}
		}
	}
	if path == "" {
		cfg = Default()
	} else if cfg, err = Load(path); err != nil {
		return nil, path, err
	}
	if err := cfg.applyEnv(getenv); err != nil {
		return nil, path, err
	}
	return cfg, path, nil
}

func (f Finder) userFile() string {
	if f.UserFile != "" {
		return f.UserFile
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "" // no home: there is no user file
	}
	return filepath.Join(dir, "cryophile", "cryophile.toml")
}

// Find is Finder{}.Find: the lookup every command does.
func Find(explicit string) (cfg *Config, path string, err error) {
	return Finder{}.Find(explicit)
}

// ApplyEnv applies the environment to c: $CRYOPHILE_SPOOL, if set,
// replaces c.Spool (a relative path is made absolute). Find calls it;
// --spool is applied by the command after it.
func (c *Config) ApplyEnv() error {
	return c.applyEnv(os.Getenv)
}

func (c *Config) applyEnv(getenv func(string) string) error {
	s := getenv(EnvSpool)
	if s == "" {
		return nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return &Error{Key: EnvSpool, Err: fmt.Errorf("%s=%q: %w", EnvSpool, s, err)}
	}
	c.Spool = abs
	return nil
}
