package imap

import (
	"context"
	"io"
	"iter"
	"slices"

	"github.com/sealmail/sealmail/store"
)

// Trainer learns from a user's own verdicts on mail (server/filter):
// a message moved or copied into the \Junk mailbox is spam; one moved
// out of \Junk, anywhere but \Trash, is ham (as Dovecot's IMAPSieve
// antispam setups do). Options.Trainer; nil trains nothing.
type Trainer interface {
	// Learn trains account's filter with msgs (plaintext) as spam or
	// ham. keys is the session's unlocked keyring: the account's filter
	// state is sealed under its index key. Learn must not keep keys.
	Learn(ctx context.Context, account string, keys IndexKeys, spam bool, msgs iter.Seq2[io.Reader, error]) error
}

// IndexKeys is the part of the session's keyring a Trainer may use.
type IndexKeys interface {
	SealIndex(plain, ad []byte) ([]byte, error)
	OpenIndex(sealed, ad []byte) ([]byte, error)
}

// Bounds of training after one command: a MOVE of a whole mailbox into
// Junk trains its first maxTrain messages, and messages larger than
// maxTrainSize are left out (the classifier reads a message's first MiB;
// opening a huge one for that is not worth the memory).
const (
	maxTrain     = 500
	maxTrainSize = 8 << 20
)

// train is called after a COPY or MOVE from src to dst of the messages
// now at dstUIDs in dst. It trains synchronously, so that the next
// delivery already sees the verdict; a failure is logged, never
// reported to the client (the COPY or MOVE succeeded). The Trainer reads
// verified plaintext only (server/mailbox): a message changed at rest
// trains nothing.
func (s *session) train(ctx context.Context, a authState, srcID uint64, dst store.Mailbox, dstUIDs []uint32, moved bool) {
	if s.srv.trainer == nil || len(dstUIDs) == 0 {
		return
	}
	log := a.log
	src, err := s.srv.st.MailboxByID(ctx, a.account, srcID)
	if err != nil {
		return
	}
	var spam bool
	switch {
	case dst.SpecialUse == `\Junk` && src.SpecialUse != `\Junk`:
		spam = true
	case moved && src.SpecialUse == `\Junk` && dst.SpecialUse != `\Junk` && dst.SpecialUse != `\Trash`:
		spam = false
	default:
		return
	}
	uids := slices.Clone(dstUIDs)
	slices.Sort(uids)
	if len(uids) > maxTrain {
		log.Info("training on the first messages only", "messages", len(uids), "trained", maxTrain)
		uids = uids[:maxTrain]
	}
	listed, err := s.srv.st.Messages(ctx, a.account, dst.ID, store.ListOptions{FromUID: uids[0], ToUID: uids[len(uids)-1], WithSummary: true})
	if err != nil {
		log.Warn("training: list messages", "mailbox", dst.Name, "err", err)
		return
	}
	var msgs []store.Message
	for _, m := range listed {
		if _, ok := slices.BinarySearch(uids, m.UID); ok && m.SealedSize <= maxTrainSize {
			msgs = append(msgs, m)
		}
	}
	sums, _, err := a.rd.Summaries(ctx, dst.ID, msgs)
	if err != nil {
		return
	}
	seq := func(yield func(io.Reader, error) bool) {
		for i := range msgs {
			if sums[i] == nil {
				continue
			}
			b, err := a.rd.Open(ctx, dst.ID, &msgs[i], sums[i].Size)
			if err != nil {
				log.Warn("training: open message", "mailbox", dst.Name, "uid", msgs[i].UID, "err", err)
				continue
			}
			r, err := b.Range(ctx, 0, sums[i].Size)
			if err != nil {
				b.Close()
				continue
			}
			more := yield(r, nil)
			b.Close()
			if !more {
				return
			}
		}
	}
	if err := s.srv.trainer.Learn(ctx, a.account, a.keys, spam, seq); err != nil {
		log.Warn("training failed", "mailbox", dst.Name, "err", err)
		return
	}
	log.Info("trained the spam filter", "mailbox", dst.Name, "messages", len(msgs), "spam", spam)
}

func dstUIDs(res store.CopyResult) []uint32 {
	out := make([]uint32, len(res.Pairs))
	for i, p := range res.Pairs {
		out[i] = p.Dst
	}
	return out
}
