package main

import (
	"errors"
	"fmt"
	"strings"

	"skiff.dev/skiff/config/systemd"
	"skiff.dev/skiff/version"
)

// renderUnit is r's unit from config/systemd running bin with flags on
// its ExecStart, before the unit's variable of further flags.
func renderUnit(r *role, bin string, flags []string) (string, error) {
	q, err := execArg(bin)
	if err != nil {
		return "", fmt.Errorf("--bin-dir: %w", err)
	}
	words := []string{q}
	for _, f := range flags {
		if q, err = execArg(f); err != nil {
			return "", err
		}
		words = append(words, q)
	}
	lines := strings.SplitAfter(r.template, "\n")
	found := 0
	for i, line := range lines {
		body, ok := strings.CutPrefix(line, "ExecStart=")
		if !ok {
			continue
		}
		found++
		body = strings.TrimRight(body, "\n")
		rest, ok := strings.CutPrefix(body, systemd.Binary+" ")
		if !ok || !strings.HasSuffix(rest, " "+r.argsVar) {
			return "", fmt.Errorf("config/systemd/%s: ExecStart=%s: want %s ... %s", r.unit(), body, systemd.Binary, r.argsVar)
		}
		rest = strings.TrimSuffix(rest, r.argsVar)
		lines[i] = "ExecStart=" + words[0] + " " + rest + strings.Join(append(words[1:], r.argsVar), " ") + "\n"
	}
	if found != 1 {
		return "", fmt.Errorf("config/systemd/%s: %d ExecStart= lines, want 1", r.unit(), found)
	}
	header := installMarker + r.name + "` (skiff " + version.Version + ") from skiff's config/systemd/" + r.unit() + ";\n" +
		"# `skiff uninstall " + r.name + "` removes it. Run skiff install again to change its flags.\n\n"
	return header + strings.Join(lines, ""), nil
}

// templateFlags are the flags on the template's ExecStart that take no
// variable: the server's --data-dir.
func templateFlags(r *role) ([]string, error) {
	line, err := execStart(r.template)
	if err != nil {
		return nil, fmt.Errorf("config/systemd/%s: %w", r.unit(), err)
	}
	words, err := execWords(line)
	if err != nil || len(words) < 2 || words[0] != systemd.Binary || words[1] != r.name {
		return nil, fmt.Errorf("config/systemd/%s: ExecStart=%s: want %s %s ...", r.unit(), line, systemd.Binary, r.name)
	}
	var flags []string
	for _, w := range words[2:] {
		if !strings.Contains(w, "$") {
			flags = append(flags, w)
		}
	}
	return flags, nil
}

// execStart is the value of the unit's (last) ExecStart= line.
func execStart(unit string) (string, error) {
	var v string
	found := false
	for _, line := range strings.Split(unit, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart="); ok {
			v, found = s, true
		}
	}
	if !found {
		return "", errors.New("no ExecStart=")
	}
	return v, nil
}

// execArg quotes s as one argument on a systemd ExecStart= line
// (systemd.service(5), "Command lines"): % and $ are doubled, so that no
// specifier or variable is expanded in it, and anything but plain
// characters is double-quoted with \ and " escaped.
func execArg(s string) (string, error) {
	plain := s != ""
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%q: a control character cannot be passed on a unit's command line", s)
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=,+@%$", c)) {
			plain = false
		}
	}
	e := strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if plain {
		return e, nil
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(e) + `"`, nil
}

// execWords splits an ExecStart= value into its words as systemd does:
// %% is %, words end at unquoted blanks, double or single quotes enclose
// blanks, backslash escapes as in C, and $$ is $ (any other $ is left as
// it is: systemd would expand it from the environment).
func execWords(s string) ([]string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		if s[i] == '%' && i+1 < len(s) && s[i+1] == '%' {
			i++
		}
	}
	s = b.String()
	var words []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			switch e := s[i]; e {
			case 'n':
				w.WriteByte('\n')
			case 't':
				w.WriteByte('\t')
			case 's':
				w.WriteByte(' ')
			default:
				w.WriteByte(e)
			}
			inWord = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, w.String())
	}
	for i, word := range words {
		words[i] = strings.ReplaceAll(word, "$$", "$")
	}
	return words, nil
}

// shellWords quotes args for a POSIX shell, to print a command to run.
func shellWords(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		plain := a != ""
		for _, c := range a {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=,+@%", c)) {
				plain = false
			}
		}
		if plain {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
