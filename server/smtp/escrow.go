package smtp

import (
	"context"
	"fmt"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Escrow decides which copies are sealed to the organisation's escrow
// key as well as to their account's key (docs/escrow.md): mail of the
// classes the retention policy marks producible, once escrow is on.
type Escrow interface {
	// EscrowKeys returns the keys a copy for account, bound for its
	// mailbox with ID mailbox (0: INBOX), of class class ("" for the
	// default class), is sealed to besides the account's own; nil for
	// none. An error fails the delivery temporarily, so a copy that must
	// stay producible is never stored without its escrow.
	EscrowKeys(ctx context.Context, account string, mailbox uint64, class string) ([]*crypto.PublicKey, error)
}

// escrowFor returns, per account, the escrow keys its copy (bound for
// boxes[i], of class classes[i]; nil classes: the default class for all)
// is sealed to.
func (s *Server) escrowFor(ctx context.Context, accounts []store.PublicAccount, boxes []uint64, classes []string) ([][]*crypto.PublicKey, error) {
	also := make([][]*crypto.PublicKey, len(accounts))
	if s.opt.Escrow == nil {
		return also, nil
	}
	for i, a := range accounts {
		class := ""
		if i < len(classes) {
			class = classes[i]
		}
		keys, err := s.opt.Escrow.EscrowKeys(ctx, a.Address, boxes[i], class)
		if err != nil {
			return nil, fmt.Errorf("smtp: escrow for %s: %w", a.Address, err)
		}
		also[i] = keys
	}
	return also, nil
}
