package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// journalHandler is a slog.Handler that sends records to journald with each
// attribute as a journal field as well as in the message text, so that
// `journalctl -u cryophile-freeze ARCHIVE=…` or `KEY=…` finds the lines
// about one archive or object. Attribute keys become upper-case field names
// (archive → ARCHIVE, fragment → FRAGMENT); groups are joined with "_".
type journalHandler struct {
	level slog.Leveler
	attrs []slog.Attr // from WithAttrs, already prefixed
	group string
	send  func(msg string, p journal.Priority, vars map[string]string) error
}

func newJournalHandler(level slog.Leveler) *journalHandler {
	return &journalHandler{level: level, send: journal.Send}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{}
	var text strings.Builder
	text.WriteString(r.Message)
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return
		}
		key := a.Key
		if prefix != "" {
			key = prefix + "_" + key
		}
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				add(key, g)
			}
			return
		}
		v := a.Value.String()
		fmt.Fprintf(&text, " %s=%q", key, v)
		if f := fieldName(key); f != "" {
			vars[f] = v
		}
	}
	for _, a := range h.attrs {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		add(h.group, a)
		return true
	})
	return h.send(text.String(), priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		if h.group != "" {
			a.Key = h.group + "_" + a.Key
		}
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	if n.group != "" {
		n.group += "_"
	}
	n.group += name
	return &n
}

// fieldName turns an attribute key into a journal field name: upper-case
// letters, digits and underscores, not starting with an underscore (those
// are trusted fields journald sets itself) or a digit. Keys that cannot be
// one, and MESSAGE/PRIORITY, return "".
func fieldName(key string) string {
	var b strings.Builder
	for _, c := range key {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteRune(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	f := strings.TrimLeft(b.String(), "_0123456789")
	switch f {
	case "", "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER":
		return ""
	}
	return f
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
