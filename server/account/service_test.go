package account

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// TestLifecycle walks one account through every operation.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t, Options{})
	info := mustCreate(t, s, "Alice@Example.ORG", alicePW)
	if info.Address != alice || len(info.Slots) != 1 || info.Slots[0].Kind != store.SlotPassword || !info.PublishWKD || len(info.Fingerprint) != 40 {
		t.Fatalf("Create = %+v", info)
	}
	mbs, err := st.Mailboxes(ctx, alice)
	if err != nil || len(mbs) != len(store.DefaultMailboxes) {
		t.Fatalf("mailboxes: %d, %v", len(mbs), err)
	}
	for _, tc := range []struct {
		addr, pw string
		kind     error
		msg      string
	}{
		{alice, alicePW, ErrExists, "already exists"},
		{"bob@example.net", alicePW, ErrInvalid, "not configured"},
		{"bob@@example.org", alicePW, ErrInvalid, `malformed address "bob@@example.org": '@' in local part`},
		{"bob", alicePW, ErrInvalid, "is not local@domain"},
		{"bob@example.org", "short", ErrInvalid, "too short"},
		{"bob@example.org", "", ErrInvalid, "empty"},
		{"bob@example.org", "twelve chars\x00long", ErrInvalid, "control characters"},
	} {
		_, err := s.Create(ctx, tc.addr, []byte(tc.pw))
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Create(%q, %q) = %v, want %v mentioning %q", tc.addr, tc.pw, err, tc.kind, tc.msg)
		}
	}
	if list, err := s.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}

	if err := s.SetPublishWKD(ctx, alice, false); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(ctx, alice); info.PublishWKD {
		t.Error("WKD flag not cleared")
	}
	if err := s.SetPublishWKD(ctx, "carol@example.org", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPublishWKD on no account: %v", err)
	}
	pub, err := s.PublicKey(ctx, alice)
	if err != nil || !strings.HasPrefix(string(pub), "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Fatalf("PublicKey: %.40q %v", pub, err)
	}
	if _, err := s.ExportSecretKey(ctx, alice, []byte("not the password")); !errors.Is(err, ErrBadCredentials) || !strings.Contains(err.Error(), "cannot reset a password") {
		t.Fatalf("ExportSecretKey with a wrong password: %v", err)
	}
	if sec, err := s.ExportSecretKey(ctx, alice, []byte(alicePW)); err != nil || !strings.HasPrefix(string(sec), "-----BEGIN PGP PRIVATE KEY BLOCK-----") {
		t.Fatalf("ExportSecretKey: %v", err)
	}

	// A recovery code, then a password change with it, typed as a person
	// would: lower case, spaces instead of dashes.
	rc, err := s.AddRecoveryCode(ctx, alice, []byte(alicePW))
	if err != nil {
		t.Fatal(err)
	}
	typed := strings.ToLower(strings.ReplaceAll(rc.Secret, "-", " "))
	if _, err := s.ChangePassword(ctx, alice, []byte(typed), []byte("short")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "new password: the password is too short") {
		t.Fatalf("ChangePassword to a short one: %v", err)
	}
	pc, err := s.ChangePassword(ctx, alice, []byte(typed), []byte(newPW))
	if err != nil {
		t.Fatalf("ChangePassword with the typed recovery code: %v", err)
	}
	if len(pc.RemovedSlots) != 1 || pc.RemovedSlots[0] != info.Slots[0].ID || pc.NewSlot == info.Slots[0].ID {
		t.Fatalf("ChangePassword = %+v", pc)
	}
	if _, err := s.ExportSecretKey(ctx, alice, []byte(alicePW)); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	// Recovery codes manage but do not log in.
	if _, err := login(s, "192.0.2.1:1", alice, rc.Secret); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("login with a recovery code: %v", err)
	}

	// App passwords log in but do not manage.
	if _, err := s.AddAppPassword(ctx, alice, []byte(newPW), " "); !errors.Is(err, ErrInvalid) {
		t.Fatalf("app password with an empty label: %v", err)
	}
	if _, err := s.AddAppPassword(ctx, alice, []byte(newPW), "two\nlines"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("app password with a control character in its label: %v", err)
	}
	ap, err := s.AddAppPassword(ctx, alice, []byte(newPW), "phone")
	if err != nil {
		t.Fatal(err)
	}
	if ap.Secret != strings.ToLower(ap.Secret) || len(ap.Secret) != 24 {
		t.Fatalf("app password %q", ap.Secret)
	}
	sess := mustLogin(t, s, "192.0.2.1:1", alice, strings.ToUpper(ap.Secret))
	if sess.Account() != alice || sess.Slot() != ap.Slot || sess.SlotKind() != store.SlotAppPassword {
		t.Fatalf("session %s slot %d kind %v", sess.Account(), sess.Slot(), sess.SlotKind())
	}
	if _, err := s.AddAppPassword(ctx, alice, []byte(ap.Secret), "tablet"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("an app password made another: %v", err)
	}

	slots, err := s.Slots(ctx, alice)
	if err != nil || len(slots) != 3 {
		t.Fatalf("Slots = %+v, %v", slots, err)
	}
	var kinds []string
	for _, sl := range slots {
		kinds = append(kinds, sl.Kind.String()+":"+sl.Label)
	}
	if got := strings.Join(kinds, " "); got != "recovery: password: app-password:phone" {
		t.Errorf("slots %s", got)
	}
	// The password and the recovery code are the last typeable slots:
	// revoking one is allowed, both is not; app passwords never count.
	if _, err := s.RevokeSlot(ctx, alice, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke a missing slot: %v", err)
	}
	if rev, err := s.RevokeSlot(ctx, alice, rc.Slot); err != nil || rev.NoPassword {
		t.Fatalf("revoke the recovery code: %+v, %v", rev, err)
	}
	if _, err := s.RevokeSlot(ctx, alice, pc.NewSlot); !errors.Is(err, ErrLastSlot) {
		t.Fatalf("revoking the last password: %v", err)
	}
	rev, err := s.RevokeSlot(ctx, alice, ap.Slot)
	if err != nil || rev.EndedSessions != 1 || rev.Slot.Label != "phone" {
		t.Fatalf("revoke the app password: %+v, %v", rev, err)
	}
	if e, cause := ended(sess); !e || !errors.Is(cause, ErrSlotRemoved) || !wiped(sess.Keyring()) {
		t.Fatalf("session of a revoked app password: ended %v (%v), wiped %v", e, cause, wiped(sess.Keyring()))
	}
	if _, err := login(s, "192.0.2.1:1", alice, ap.Secret); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("revoked app password logs in: %v", err)
	}

	del, err := s.Delete(ctx, alice)
	if err != nil || del.Slots != 1 || del.Mailboxes != len(store.DefaultMailboxes) {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	if _, err := s.Delete(ctx, alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s.Info(ctx, alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info after Delete: %v", err)
	}
}

// TestSessionsEnd: a session lives as long as the slot it unlocked.
func TestSessionsEnd(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Options{})
	mustCreate(t, s, alice, alicePW)
	ap, err := s.AddAppPassword(ctx, alice, []byte(alicePW), "laptop")
	if err != nil {
		t.Fatal(err)
	}
	byPW := mustLogin(t, s, "192.0.2.1:1", alice, alicePW)
	byApp := mustLogin(t, s, "192.0.2.2:1", alice, ap.Secret)
	if n := s.Sessions(alice); n != 2 {
		t.Fatalf("%d sessions", n)
	}
	pc, err := s.ChangePassword(ctx, alice, []byte(alicePW), []byte(newPW))
	if err != nil || pc.EndedSessions != 1 {
		t.Fatalf("ChangePassword = %+v, %v", pc, err)
	}
	if e, cause := ended(byPW); !e || !errors.Is(cause, ErrSlotRemoved) || !wiped(byPW.Keyring()) {
		t.Fatalf("password session after the change: ended %v (%v)", e, cause)
	}
	if e, _ := ended(byApp); e || wiped(byApp.Keyring()) {
		t.Fatal("the app password's session ended with the password change")
	}
	// A logout ends only its own session.
	other := mustLogin(t, s, "192.0.2.1:1", alice, newPW)
	other.Close()
	other.Close()
	if e, cause := ended(other); !e || !errors.Is(cause, context.Canceled) || !wiped(other.Keyring()) {
		t.Fatalf("closed session: ended %v (%v)", e, cause)
	}
	if n := s.Sessions(alice); n != 1 {
		t.Fatalf("%d sessions after a logout", n)
	}
	last := mustLogin(t, s, "192.0.2.3:1", alice, newPW)
	del, err := s.Delete(ctx, alice)
	if err != nil || del.EndedSessions != 2 {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	for _, sess := range []*Session{byApp, last} {
		if e, cause := ended(sess); !e || !errors.Is(cause, ErrAccountDeleted) || !wiped(sess.Keyring()) {
			t.Fatalf("session after Delete: ended %v (%v)", e, cause)
		}
	}
	if n := s.Sessions(alice); n != 0 {
		t.Fatalf("%d sessions after Delete", n)
	}
	// Close ends what is left.
	mustCreate(t, s, "bob@example.org", alicePW)
	bob := mustLogin(t, s, "192.0.2.1:1", "bob@example.org", alicePW)
	s.Close()
	if e, cause := ended(bob); !e || !errors.Is(cause, ErrClosed) || !wiped(bob.Keyring()) {
		t.Fatalf("session after Close: ended %v (%v)", e, cause)
	}
	if _, err := login(s, "192.0.2.1:1", "bob@example.org", alicePW); !errors.Is(err, ErrClosed) {
		t.Fatalf("login after Close: %v", err)
	}
}

// TestLoginRacingChange: a login that read the account before a change
// cannot register its session after it.
func TestLoginRacingChange(t *testing.T) {
	s, st := newService(t, Options{})
	mustCreate(t, s, alice, alicePW)
	acct, err := st.Account(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	gen, done, err := s.beginLogin(alice)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypto.UnlockSlot(acct.Slots[0].Data, []byte(alicePW), acct.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	s.changed(alice, func(*Session) bool { return true }, ErrAccountDeleted)
	if _, err := s.register(alice, gen, acct.Slots[0], kr, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("register after a change: %v", err)
	}
	done()
	if !wiped(kr) {
		t.Fatal("refused registration left the keyring unwiped")
	}
	if n := len(s.accts); n != 0 {
		t.Fatalf("%d account states left", n)
	}
}

type guard struct{ held string }

func (g guard) MayDelete(_ context.Context, addr string) error {
	if addr == g.held {
		return errors.New("under legal hold LH-1")
	}
	return nil
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Record(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

// TestHooks: the delete guard can refuse, and every change is audited.
func TestHooks(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	s, _ := newService(t, Options{DeleteGuard: guard{alice}, Auditor: rec})
	mustCreate(t, s, alice, alicePW)
	sess := mustLogin(t, s, "192.0.2.1:1", alice, alicePW)
	if _, err := s.Delete(ctx, alice); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "LH-1") {
		t.Fatalf("Delete of a held account: %v", err)
	}
	if e, _ := ended(sess); e {
		t.Fatal("a refused delete ended the session")
	}
	if _, err := s.Info(ctx, alice); err != nil {
		t.Fatalf("held account gone: %v", err)
	}
	mustCreate(t, s, "bob@example.org", alicePW)
	ap, err := s.AddAppPassword(ctx, "bob@example.org", []byte(alicePW), "phone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSlot(ctx, "bob@example.org", ap.Slot); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPublishWKD(ctx, "bob@example.org", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range rec.events {
		ops = append(ops, string(e.Op)+" "+e.Account)
		if e.Time.IsZero() {
			t.Errorf("event without time: %+v", e)
		}
	}
	want := "account.created alice@example.org,account.created bob@example.org,account.slot-added bob@example.org,account.slot-revoked bob@example.org,account.wkd-changed bob@example.org,account.deleted bob@example.org"
	if got := strings.Join(ops, ","); got != want {
		t.Errorf("audited\n %s\nwant\n %s", got, want)
	}
}

// TestSlotCap: an account holds at most MaxSlots slots, and a new code's
// selector never repeats one of its kind.
func TestSlotCap(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Options{})
	mustCreate(t, s, alice, alicePW)
	for i := 1; i < MaxSlots; i++ {
		if _, err := s.AddAppPassword(ctx, alice, []byte(alicePW), "device"); err != nil {
			t.Fatalf("app password %d: %v", i, err)
		}
	}
	if _, err := s.AddRecoveryCode(ctx, alice, []byte(alicePW)); !errors.Is(err, ErrTooManySlots) {
		t.Fatalf("slot %d: %v", MaxSlots+1, err)
	}
	slots, err := s.Slots(ctx, alice)
	if err != nil || len(slots) != MaxSlots {
		t.Fatalf("%d slots, %v", len(slots), err)
	}
}

// TestRevokePassword: the password may go while a recovery code remains;
// the account then cannot log in until the code sets a new password.
func TestRevokePassword(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, Options{})
	info := mustCreate(t, s, alice, alicePW)
	rc, err := s.AddRecoveryCode(ctx, alice, []byte(alicePW))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.RevokeSlot(ctx, alice, info.Slots[0].ID)
	if err != nil || !rev.NoPassword {
		t.Fatalf("revoke the password: %+v, %v", rev, err)
	}
	if _, err := login(s, "192.0.2.1:1", alice, alicePW); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("revoked password logs in: %v", err)
	}
	if _, err := s.RevokeSlot(ctx, alice, rc.Slot); !errors.Is(err, ErrLastSlot) {
		t.Fatalf("revoke the last recovery code: %v", err)
	}
	if _, err := s.ChangePassword(ctx, alice, []byte(rc.Secret), []byte(newPW)); err != nil {
		t.Fatal(err)
	}
	mustLogin(t, s, "192.0.2.1:1", alice, newPW)
}
