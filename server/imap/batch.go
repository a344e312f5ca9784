package imap

import (
	"errors"

	"github.com/sealmail/sealmail/store"
)

// maxBatch is the most messages one store call of a COPY, MOVE or STORE
// is asked to change. A backend whose transactions hold fewer answers
// store.ErrTooLarge, and inBatches halves the run.
const maxBatch = 4096

// inBatches calls do with consecutive runs of uids, in order, so that a
// command on any number of messages goes through in as few store
// transactions as the store allows (Dovecot and Thunderbird move whole
// 50,000-message folders). A run too large for one transaction
// (store.ErrTooLarge: nothing was stored) is halved and tried again, and
// later runs keep the smaller size. It stops at the first other error,
// after the runs before it were committed.
func inBatches(uids []uint32, do func([]uint32) error) error {
	size := maxBatch
	for len(uids) > 0 {
		n := min(len(uids), size)
		err := do(uids[:n])
		if errors.Is(err, store.ErrTooLarge) && n > 1 {
			size = n / 2
			continue
		}
		if err != nil {
			return err
		}
		uids = uids[n:]
	}
	return nil
}
