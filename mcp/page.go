package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// A page token says where a listing goes on: the API server's continue
// token of the page it was cut from (its own snapshot), and how many of
// that page's objects were already given. A page cut short by the byte
// budget goes on from the object it stopped at.
type pageToken struct {
	C string `json:"c,omitempty"`
	S int    `json:"s,omitempty"`
	// N is the API page size S counts in; R the resource version of the
	// first API page (later ones carry theirs in C).
	N int64  `json:"n,omitempty"`
	R string `json:"r,omitempty"`
}

func (t pageToken) encode() string {
	data, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(data)
}

func decodePageToken(s string) (pageToken, error) {
	var t pageToken
	if s == "" {
		return t, nil
	}
	data, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(data, &t)
	}
	if err != nil || t.S < 0 || t.N < 0 {
		return pageToken{}, errors.New("argument continue: not a token this bridge gave")
	}
	return t, nil
}

// fetchFunc lists one page of raw objects from the API server, going on
// from cont (or, for a first page, at resource version rv when set), at
// most limit of them; it returns the next page's token and the list's
// resource version.
type fetchFunc[R any] func(ctx context.Context, cont, rv string, limit int64) (items []R, next, listRV string, err error)

// Page is one page of summaries.
type Page[T any] struct {
	Items []T `json:"items"`
	// Continue fetches the next page; empty on the last.
	Continue string `json:"continue,omitempty"`
	// Note says why the page is short or cut, and how to get the rest.
	Note string `json:"note,omitempty"`
}

// apiPageSize is the most objects fetched a request while paging; a page
// of limit summaries fetches twice that, room for what filters drop.
const apiPageSize = 500

// paginate fills a page of at most limit summaries of at most budget
// bytes (wireSize), starting at token, keeping the raw objects keep accepts.
// At least one summary is given when any is left, so paging always moves.
func paginate[R, T any](ctx context.Context, fetch fetchFunc[R], keep func(*R) (T, bool), limit, budget int, token string) (Page[T], error) {
	tok, err := decodePageToken(token)
	if err != nil {
		return Page[T]{}, err
	}
	page := Page[T]{Items: []T{}}
	used := 0
	if tok.N == 0 {
		tok.N = int64(min(apiPageSize, 2*limit))
	}
	for {
		raw, next, rv, err := fetch(ctx, tok.C, tok.R, tok.N)
		if err != nil {
			return Page[T]{}, err
		}
		if tok.C == "" {
			tok.R = rv
		}
		here := func(i int) string { return pageToken{C: tok.C, S: i, N: tok.N, R: tok.R}.encode() }
		for i := tok.S; i < len(raw); i++ {
			if len(page.Items) == limit {
				page.Continue = here(i)
				return page, nil
			}
			sum, ok := keep(&raw[i])
			if !ok {
				continue
			}
			size := wireSize(sum) + 3
			if used+size > budget && len(page.Items) > 0 {
				page.Continue = here(i)
				page.Note = fmt.Sprintf("cut at %d items to stay within the response cap; call again with continue to get the rest", len(page.Items))
				return page, nil
			}
			page.Items = append(page.Items, sum)
			used += size
		}
		if next == "" {
			return page, nil
		}
		tok = pageToken{C: next, N: tok.N}
	}
}

// wireSize is what v costs in a tool result: its JSON as structured
// content, and that JSON again as a JSON string in the text content.
func wireSize(v any) int {
	data, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	quoted, _ := json.Marshal(string(data))
	return len(data) + len(quoted)
}
