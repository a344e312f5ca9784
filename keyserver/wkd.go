package keyserver

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/store"
)

// maxLocalLen is RFC 5321 §4.5.3.1.1's bound on a local part.
const maxLocalLen = 64

// wkdPolicy is the policy file served for every domain
// (draft-koch-openpgp-webkey-service §4.5). It announces no submission
// address and no flags: keys are made and published by the provider, and
// the Web Key Directory Update Protocol is not offered, so the
// submission-address file is never served (404).
var wkdPolicy = []byte("# sealmail: keys are published by the mail provider; no key submission.\n")

func (h *Handler) serveWKDPolicy(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if h.cfg.keys == nil {
		httpError(w, http.StatusNotFound)
		return
	}
	writeBody(w, "text/plain; charset=utf-8", wkdPolicy)
}

// wkdQuery is what a WKD key request asks for.
type wkdQuery struct {
	hash  string // valid z-base-32 hash
	local string // the "l" parameter as sent; "" if absent
}

// parseWKDRequest checks the hash path element and the raw query of a key
// request. It returns the HTTP status to answer with when the request is
// refused: 400 for a query that cannot be parsed or repeats "l", 404 for
// everything that cannot name a key (bad hash, bad or mismatching local
// part).
func parseWKDRequest(hash, rawQuery string) (wkdQuery, int) {
	if !validHash(hash) {
		return wkdQuery{}, http.StatusNotFound
	}
	if len(rawQuery) > maxQueryLen {
		return wkdQuery{}, http.StatusBadRequest
	}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return wkdQuery{}, http.StatusBadRequest
	}
	q := wkdQuery{hash: hash}
	switch ls := vals["l"]; len(ls) {
	case 0:
	case 1:
		if !validLocal(ls[0]) || WKDHash(ls[0]) != hash {
			return wkdQuery{}, http.StatusNotFound
		}
		q.local = ls[0]
	default:
		return wkdQuery{}, http.StatusBadRequest
	}
	return q, 0
}

// validLocal accepts what could be the local part of a sealmail address:
// 1–64 bytes of valid UTF-8 without controls, spaces, '@' or '/'.
func validLocal(l string) bool {
	if l == "" || len(l) > maxLocalLen || !utf8.ValidString(l) {
		return false
	}
	for _, r := range l {
		if r <= ' ' || r == 0x7f || r == '@' || r == '/' || r == '\\' || r == '"' || (r >= 0x80 && r <= 0x9f) {
			return false
		}
	}
	return true
}

// wkdMissFloor is the least time a WKD key request that names an address
// takes to be answered 404. An account that exists but is not published
// costs the store more work than no account at all (a record is read and
// decoded, where a miss stops at badger's bloom filter): about 5 µs in
// BenchmarkWKDMiss, 40 µs over HTTPS against the binary. Holding every
// such 404 to the same floor, far above either, makes both take the same
// time, so the response time no longer tells which addresses exist.
const wkdMissFloor = 2 * time.Millisecond

// notFoundAt answers 404, no earlier than wkdMissFloor after start.
func notFoundAt(w http.ResponseWriter, r *http.Request, start time.Time) {
	if d := wkdMissFloor - time.Since(start); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	httpError(w, http.StatusNotFound)
}

func (h *Handler) serveWKDKey(w http.ResponseWriter, r *http.Request, cid uint64, domain, hash string) {
	start := time.Now()
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if h.cfg.keys == nil {
		httpError(w, http.StatusNotFound)
		return
	}
	q, status := parseWKDRequest(hash, r.URL.RawQuery)
	if status != 0 {
		httpError(w, status)
		return
	}
	ctx := r.Context()
	var addr string
	if q.local != "" {
		// The store's canonical form lower-cases the whole local part
		// (policy.CanonicalAddress); the hash, like GnuPG's, only ASCII.
		addr = strings.ToLower(q.local) + "@" + domain
	} else if h.index != nil {
		a, err := h.index.lookup(ctx, domain, q.hash)
		if err != nil {
			h.cfg.log.Error("keyserver: build WKD index", slog.String("proto", "wkd"), slog.Uint64("cid", cid), slog.Any("err", err))
			httpError(w, http.StatusInternalServerError)
			return
		}
		addr = a
	}
	if addr == "" {
		notFoundAt(w, r, start)
		return
	}
	acct, err := h.cfg.keys.PublicAccount(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		notFoundAt(w, r, start)
		return
	}
	if err != nil {
		h.cfg.log.Error("keyserver: account lookup", slog.String("proto", "wkd"), slog.Uint64("cid", cid), slog.Any("err", err))
		httpError(w, http.StatusInternalServerError)
		return
	}
	if !acct.PublishWKD || acct.Address != addr {
		notFoundAt(w, r, start)
		return
	}
	key, err := exportKey(acct.PublicKey, addr)
	if err != nil {
		h.cfg.log.Warn("keyserver: stored public key not servable", slog.String("proto", "wkd"), slog.Uint64("cid", cid),
			slog.String("account", addr), slog.Any("err", err))
		notFoundAt(w, r, start)
		return
	}
	h.cfg.log.Debug("keyserver: key served", slog.String("proto", "wkd"), slog.Uint64("cid", cid), slog.String("account", addr))
	writeBody(w, "application/octet-stream", key)
}
