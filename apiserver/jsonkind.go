package apiserver

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// kindMeta finds a JSON object's apiVersion and kind for the JSON
// serializer. The library's own (json.DefaultMetaFactory) decodes the
// whole document with encoding/json to read two fields, which was about a
// fortieth of the server's CPU under load; kindMeta reads the top-level
// keys and steps over their values. Whatever it is unsure of (an escape in
// a key or in the two values, a value that is not a plain string, bytes
// that are not an object) it hands to the library's, so what it returns is
// the library's answer. Bytes that are not valid JSON further in are
// refused by the decode that follows.
type kindMeta struct{}

var _ json.MetaFactory = kindMeta{}

// Interpret returns the apiVersion and kind data declares.
func (kindMeta) Interpret(data []byte) (*schema.GroupVersionKind, error) {
	apiVersion, kind, ok := scanKind(data)
	if !ok {
		return json.DefaultMetaFactory.Interpret(data)
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, err
	}
	return &schema.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: kind}, nil
}

// storedKind is the kind of an object the storage codec has just encoded.
func storedKind(data []byte) (schema.GroupVersionKind, error) {
	gvk, err := kindMeta{}.Interpret(data)
	if err != nil {
		return schema.GroupVersionKind{}, fmt.Errorf("stored object's kind: %w", err)
	}
	return *gvk, nil
}

// scanKind reads the top-level "apiVersion" and "kind" strings of the
// JSON object in data, matching keys as encoding/json does (exactly or
// case-insensitively, the last of duplicates winning). It says false where
// it would have to decode more than plain strings to be sure.
func scanKind(data []byte) (apiVersion, kind string, ok bool) {
	s := scanner{data: data}
	if !s.byte('{') {
		return "", "", false
	}
	if s.byte('}') {
		return "", "", s.end()
	}
	for {
		key, ok := s.plainString()
		if !ok || !s.byte(':') {
			return "", "", false
		}
		switch {
		case bytes.EqualFold(key, []byte("apiVersion")):
			v, ok := s.plainString()
			if !ok {
				return "", "", false
			}
			apiVersion = string(v)
		case bytes.EqualFold(key, []byte("kind")):
			v, ok := s.plainString()
			if !ok {
				return "", "", false
			}
			kind = string(v)
		default:
			if !s.skipValue() {
				return "", "", false
			}
		}
		if s.byte(',') {
			continue
		}
		if s.byte('}') {
			return apiVersion, kind, s.end()
		}
		return "", "", false
	}
}

// scanner steps through JSON without decoding it.
type scanner struct {
	data []byte
	i    int
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c, after any space, if it is next.
func (s *scanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end says whether only space is left.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.data)
}

// plainString reads a string of plain ASCII: no escapes (which
// encoding/json would undo) and no other bytes (which it would check as
// UTF-8 and fold as Unicode).
func (s *scanner) plainString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.data) {
		switch c := s.data[s.i]; {
		case c == '"':
			s.i++
			return s.data[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// skipValue steps over one value: a string, an object or array (counting
// brackets outside strings), or a literal.
func (s *scanner) skipValue() bool {
	s.space()
	if s.i >= len(s.data) {
		return false
	}
	switch s.data[s.i] {
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.data) {
			switch s.data[s.i] {
			case '"':
				if !s.skipString() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		start := s.i
		for s.i < len(s.data) {
			switch s.data[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.i > start
			}
			s.i++
		}
		return false
	}
}

// skipString steps over a string, escapes and all.
func (s *scanner) skipString() bool {
	s.i++ // the opening quote
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case '\\':
			s.i += 2
			continue
		case '"':
			s.i++
			return true
		}
		s.i++
	}
	return false
}
