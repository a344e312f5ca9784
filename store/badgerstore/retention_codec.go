package badgerstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Retention tables. See doc.go for the layout; persisted: never reuse a
// prefix.
const (
	pRetention = 't' // t acct id                -> retention record (id: the message's blob ID)
	pDue       = 'x' // x due:8 kind acct id     -> (empty) the sweeper's index
	pRecompute = 'q' // q acct id                -> (empty) records that are Pending
	pVault     = 'v' // v acct id                -> vault entry
	pFormer    = 'f' // f acct                   -> former account: address, deleted
	pDisposal  = 'j' // j acct seq               -> messages removed by a large Expunge, to vault or destroy
	pPreset    = 'P' // P id                     -> imported preset
	pAssign    = 'A' // A scope 0 preset         -> assignment
	pHold      = 'H' // H id:8                   -> hold
	pEvent     = 'E' // E scope 0 name           -> retention event
	pScratch   = 'z' // z                        -> scratch key of Purge
)

// Kinds of sweeper index entries.
const (
	dueLive  = 'd' // a live message past its delete-after
	dueVault = 'k' // a vaulted message past its keep-until
)

// Global counters of retention (pCounter).
const (
	counterPolicyGen = "policygen" // the policy generation
	counterHold      = "hold"      // hold IDs
	counterRetention = "retention" // 1 once every message has a retention record
	counterInForce   = "inforce"   // assignments plus active holds
)

// protected reports whether a message in state r may not be destroyed at
// now: held, before its keep-until, or (while any policy is in force)
// not computed yet.
func protected(r *retentionRec, now time.Time, inForce bool) bool {
	return r.Ret.Held || r.Ret.KeepUntil.After(now) || r.Ret.Pending && inForce
}

const (
	vRetention = 1
	vVault     = 1
	vPolicyRec = 1
)

func retentionKey(acct, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pRetention, acct), id)
}

func recomputeKey(acct, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pRecompute, acct), id)
}

func vaultKey(acct, id uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pVault, acct), id)
}

func formerKey(acct uint64) []byte { return acctKey(pFormer, acct) }

func disposalKey(acct, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(acctKey(pDisposal, acct), seq)
}

// dueUnix clamps t to the index's range (seconds since 1970, ≥ 0).
func dueUnix(t time.Time) uint64 {
	if s := t.Unix(); s > 0 {
		return uint64(s)
	}
	return 0
}

func dueKey(due time.Time, kind byte, acct, id uint64) []byte {
	k := make([]byte, 0, 1+8+1+8+8)
	k = append(k, pDue)
	k = binary.BigEndian.AppendUint64(k, dueUnix(due))
	k = append(k, kind)
	k = binary.BigEndian.AppendUint64(k, acct)
	return binary.BigEndian.AppendUint64(k, id)
}

// parseDueKey splits a sweeper index key.
func parseDueKey(k []byte) (due time.Time, kind byte, acct, id uint64, ok bool) {
	if len(k) != 26 || k[0] != pDue {
		return time.Time{}, 0, 0, 0, false
	}
	return time.Unix(int64(binary.BigEndian.Uint64(k[1:9])), 0).UTC(), k[9],
		binary.BigEndian.Uint64(k[10:18]), binary.BigEndian.Uint64(k[18:26]), true
}

// retentionRec is a message's retention record, keyed by its blob ID. It
// says where the message is (its mailbox and UID, or the vault) and its
// materialised retention state.
type retentionRec struct {
	Mbox    uint64 // the mailbox it is in, or was in before the vault
	UID     uint32
	Vaulted bool
	Size    int64
	Ret     store.Retention
	Ver     uint64
}

const (
	rfHeld    = 1 << 0
	rfLocked  = 1 << 1
	rfPending = 1 << 2
	rfVaulted = 1 << 3
)

func (r *retentionRec) encode() []byte {
	var f byte
	if r.Ret.Held {
		f |= rfHeld
	}
	if r.Ret.Locked {
		f |= rfLocked
	}
	if r.Ret.Pending {
		f |= rfPending
	}
	if r.Vaulted {
		f |= rfVaulted
	}
	return enc{vRetention, f}.uvarint(r.Mbox).uvarint(uint64(r.UID)).varint(r.Size).
		time(r.Ret.Arrival).str(r.Ret.Origin).str(r.Ret.Class).time(r.Ret.KeepUntil).time(r.Ret.DeleteAfter).
		str(r.Ret.Rule).uvarint(r.Ret.Gen).uvarint(r.Ver)
}

func decodeRetention(b []byte) (retentionRec, error) {
	d := dec{b: b}
	d.version(vRetention)
	f := d.byte()
	var r retentionRec
	r.Mbox = d.uvarint()
	r.UID = d.u32()
	r.Size = d.varint()
	r.Ret.Arrival = d.time()
	r.Ret.Origin = d.str()
	r.Ret.Class = d.str()
	r.Ret.KeepUntil = zeroIfEpoch(d.time())
	r.Ret.DeleteAfter = zeroIfEpoch(d.time())
	r.Ret.Rule = d.str()
	r.Ret.Gen = d.uvarint()
	r.Ver = d.uvarint()
	r.Ret.Held = f&rfHeld != 0
	r.Ret.Locked = f&rfLocked != 0
	r.Ret.Pending = f&rfPending != 0
	r.Vaulted = f&rfVaulted != 0
	return r, d.finish()
}

// zeroIfEpoch returns the zero time for an encoded zero time (enc.time of
// time.Time{} decodes to year 1, which IsZero already reports; kept
// explicit for clarity).
func zeroIfEpoch(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t
}

// due returns the record's sweeper index entry: a live message is due at
// its delete-after, a vaulted one at its keep-until. Held messages and
// those with no such time (or Forever) have none. Pending does not
// matter: a pending record keeps its entry (DestroyMessages skips it) so
// that moving a message does not rewrite the index.
func (r *retentionRec) due() (time.Time, byte, bool) {
	if r.Ret.Held {
		return time.Time{}, 0, false
	}
	if r.Vaulted {
		if r.Ret.KeepUntil.Equal(store.Forever) {
			return time.Time{}, 0, false
		}
		return r.Ret.KeepUntil, dueVault, true // zero: due at once
	}
	if r.Ret.DeleteAfter.IsZero() || r.Ret.DeleteAfter.Equal(store.Forever) {
		return time.Time{}, 0, false
	}
	return r.Ret.DeleteAfter, dueLive, true
}

func loadRetention(t *tx, acct, id uint64) (retentionRec, error) {
	v, err := t.get(retentionKey(acct, id))
	if err != nil {
		return retentionRec{}, err
	}
	r, err := decodeRetention(v)
	if err != nil {
		return r, corrupt(fmt.Sprintf("retention record %d", id), err)
	}
	return r, nil
}

// saveRetention writes r (its Ver already set), moving its index entry
// from what old had (nil: none) to what r has, and its recompute marker.
func saveRetention(t *tx, acct, id uint64, old, r *retentionRec) error {
	var oldDue, newDue []byte
	if old != nil {
		if due, kind, ok := old.due(); ok {
			oldDue = dueKey(due, kind, acct, id)
		}
	}
	if due, kind, ok := r.due(); ok {
		newDue = dueKey(due, kind, acct, id)
	}
	if oldDue != nil && string(oldDue) != string(newDue) {
		if err := t.del(oldDue); err != nil {
			return err
		}
	}
	if newDue != nil && string(oldDue) != string(newDue) {
		if err := t.set(newDue, nil); err != nil {
			return err
		}
	}
	wasPending := old != nil && old.Ret.Pending
	switch {
	case r.Ret.Pending && !wasPending:
		if err := t.set(recomputeKey(acct, id), nil); err != nil {
			return err
		}
	case !r.Ret.Pending && wasPending:
		if err := t.del(recomputeKey(acct, id)); err != nil {
			return err
		}
	}
	return t.set(retentionKey(acct, id), r.encode())
}

// deleteRetention removes a record, its index entry and its marker.
func deleteRetention(t *tx, acct, id uint64, r *retentionRec) error {
	if due, kind, ok := r.due(); ok {
		if err := t.del(dueKey(due, kind, acct, id)); err != nil {
			return err
		}
	}
	if r.Ret.Pending {
		if err := t.del(recomputeKey(acct, id)); err != nil {
			return err
		}
	}
	return t.del(retentionKey(acct, id))
}

// vaultRec is a message in the vault: what its meta was, where it was, and
// why it went.
type vaultRec struct {
	Mbox    uint64
	Name    string
	UID     uint32
	Meta    meta
	Vaulted time.Time
	Reason  string
}

func (v *vaultRec) encode() []byte {
	return enc{vVault}.uvarint(v.Mbox).str(v.Name).uvarint(uint64(v.UID)).bytes(v.Meta.encode()).
		time(v.Vaulted).str(v.Reason)
}

func decodeVault(b []byte) (vaultRec, error) {
	d := dec{b: b}
	d.version(vVault)
	var v vaultRec
	v.Mbox = d.uvarint()
	v.Name = d.str()
	v.UID = d.u32()
	mb := d.bytes()
	v.Vaulted = d.time()
	v.Reason = d.str()
	if err := d.finish(); err != nil {
		return v, err
	}
	m, err := decodeMeta(mb, nil)
	v.Meta = m
	return v, err
}

// formerRec is the vault a deleted account left behind.
type formerRec struct {
	Address string
	Deleted time.Time
}

func (f *formerRec) encode() []byte { return enc{vPolicyRec}.str(f.Address).time(f.Deleted) }

func decodeFormer(b []byte) (formerRec, error) {
	d := dec{b: b}
	d.version(vPolicyRec)
	f := formerRec{Address: d.str(), Deleted: d.time()}
	return f, d.finish()
}

// disposal is one message of a large Expunge (or a deleted mailbox or
// account) whose blob is still to be vaulted or destroyed.
type disposal struct {
	Mbox uint64
	Name string
	UID  uint32
	Meta meta
}

func encodeDisposals(reason string, ds []disposal) []byte {
	e := enc{vPolicyRec}.str(reason).uvarint(uint64(len(ds)))
	for _, d := range ds {
		e = e.uvarint(d.Mbox).str(d.Name).uvarint(uint64(d.UID)).bytes(d.Meta.encode())
	}
	return e
}

func decodeDisposals(b []byte) (string, []disposal, error) {
	d := dec{b: b}
	d.version(vPolicyRec)
	reason := d.str()
	n := d.uvarint()
	if n > uint64(len(b)) {
		return "", nil, errCorrupt
	}
	out := make([]disposal, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		x := disposal{Mbox: d.uvarint(), Name: d.str(), UID: d.u32()}
		mb := d.bytes()
		if d.err != nil {
			break
		}
		m, err := decodeMeta(mb, nil)
		if err != nil {
			return "", nil, err
		}
		x.Meta = m
		out = append(out, x)
	}
	return reason, out, d.finish()
}
