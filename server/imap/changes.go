package imap

import "github.com/sealmail/sealmail/store"

// Expunged tells the server that messages were removed from a mailbox by
// another part of this process: the sessions that have it selected are
// told EXPUNGE, as for another IMAP session's. It does not wait for
// them. A removal whose HIGHESTMODSEQ before it is known (a retention
// sweep, an administrator's erase) takes ExpungedAbove, and one whose
// own mod-sequence the store gave (a POP3 QUIT) takes ExpungedAt.
func (s *Server) Expunged(account string, mailbox uint64, uids []uint32) {
	s.expungedBy(account, mailbox, uids, nil, false, 0, 0)
}

// ExpungedAt tells the server of a removal by another part of this
// process whose result the store gave (store.Store.Expunge): as for
// IMAP's own EXPUNGE, the sessions with the mailbox selected hear of the
// removal's mod-sequence and need no read of the store to let their
// clients keep it (see expungedAt). POP3's QUIT takes it.
func (s *Server) ExpungedAt(account string, mailbox uint64, res store.ExpungeResult) {
	s.expungedAt(account, mailbox, res, nil, false)
}

// FlagsChanged tells the server that messages' flags were changed by
// another protocol of this process (POP3 sets \Seen on what it
// retrieved): the sessions that have the mailbox selected are told
// FETCH FLAGS.
func (s *Server) FlagsChanged(account string, mailbox uint64, changed []store.Message) {
	s.flagsPublished(account, mailbox, changed)
	st := s.reg.lookup(account, mailbox)
	if st == nil {
		return
	}
	defer s.reg.release(st)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flagsLocked(changed, nil)
}

// flagsPublished puts a flag change on NOTIFY's change feed.
func (s *Server) flagsPublished(account string, mailbox uint64, changed []store.Message) {
	if len(changed) > 0 {
		s.events.publish(change{kind: changeFlags, account: account, mailbox: mailbox})
	}
}
