package account

// SessionCount returns the number of live sessions of all accounts:
// logged-in protocol sessions, each holding an unlocked keyring.
func (s *Service) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.accts {
		n += len(st.sessions)
	}
	return n
}
