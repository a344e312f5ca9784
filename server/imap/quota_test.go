package imap

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// TestQuota: QUOTA (RFC 9208) with Python's imaplib. The account's store
// quota is one root "" with STORAGE in KiB (usage rounded up from the
// sealed bytes, limit rounded down); GETQUOTAROOT names it for every
// mailbox; SETQUOTA is NO [NOPERM]; unknown roots and mailboxes are
// NO [NONEXISTENT]; an APPEND beyond the limit is NO [OVERQUOTA]; an
// account without a limit has no root.
func TestQuota(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	env.deliver(alice, "", testMessage("q", strings.Repeat("quota filler\r\n", 300)))
	ctx := context.Background()
	const limit = 64*1024 + 1000 // 64 KiB and a bit: rounded down
	if err := env.st.SetQuota(ctx, alice, limit); err != nil {
		t.Fatal(err)
	}
	acct, err := env.st.PublicAccount(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if acct.UsedBytes <= 0 || acct.UsedBytes%1024 == 0 {
		t.Fatalf("used %d bytes: the test wants a usage that needs rounding", acct.UsedBytes)
	}
	wantQuota := fmt.Sprintf(`"" (STORAGE %d 64)`, acct.UsedBytes/1024+1)
	big := strings.Repeat("x", 70*1024)
	res := env.runImaplib(alice, alicePW,
		pycmd("CAPABILITY"),                                                // 0
		pycmd("GETQUOTAROOT", "INBOX"),                                     // 1
		pycmd("GETQUOTA", `""`),                                            // 2
		pycmd("GETQUOTAROOT", "Sent"),                                      // 3
		pycmd("SETQUOTA", `""`, "(STORAGE 1000000)"),                       // 4
		pycmd("GETQUOTA", "other"),                                         // 5
		pycmd("GETQUOTAROOT", "Nosuch"),                                    // 6
		pycmd("APPEND", "INBOX", fmt.Sprintf("{%d}\r\n%s", len(big), big)), // 7
	)
	if caps := res[0].first("CAPABILITY"); !strings.Contains(caps, "QUOTA ") || !strings.Contains(caps, "QUOTA=RES-STORAGE") || strings.Contains(caps, "QUOTASET") {
		t.Fatalf("CAPABILITY = %q, want QUOTA and QUOTA=RES-STORAGE, no QUOTASET", caps)
	}
	for _, i := range []int{1, 2, 3} {
		if res[i].Status != "OK" {
			t.Fatalf("command %d: %s %s", i, res[i].Status, res[i].Text)
		}
	}
	if got := res[1].first("QUOTAROOT"); got != `"INBOX" ""` {
		t.Errorf("QUOTAROOT = %q", got)
	}
	for _, i := range []int{1, 2, 3} {
		if got := res[i].first("QUOTA"); got != wantQuota {
			t.Errorf("command %d: QUOTA = %q, want %q", i, got, wantQuota)
		}
	}
	if res[4].Status != "NO" || !strings.Contains(res[4].Text, "[NOPERM]") {
		t.Errorf("SETQUOTA = %s %q, want NO [NOPERM]", res[4].Status, res[4].Text)
	}
	for _, i := range []int{5, 6} {
		if res[i].Status != "NO" || !strings.Contains(res[i].Text, "[NONEXISTENT]") {
			t.Errorf("command %d = %s %q, want NO [NONEXISTENT]", i, res[i].Status, res[i].Text)
		}
	}
	if res[7].Status != "NO" || !strings.Contains(res[7].Text, "[OVERQUOTA]") {
		t.Errorf("APPEND over quota = %s %q, want NO [OVERQUOTA]", res[7].Status, res[7].Text)
	}

	if err := env.st.SetQuota(ctx, alice, store.QuotaNone); err != nil {
		t.Fatal(err)
	}
	res = env.runImaplib(alice, alicePW, pycmd("GETQUOTAROOT", "INBOX"), pycmd("GETQUOTA", `""`))
	if res[0].Status != "OK" || res[0].first("QUOTAROOT") != `"INBOX"` || len(res[0].all("QUOTA")) != 0 {
		t.Errorf("GETQUOTAROOT without a limit = %s %v", res[0].Status, res[0].Untagged)
	}
	if res[1].Status != "NO" {
		t.Errorf("GETQUOTA without a limit = %s %q", res[1].Status, res[1].Text)
	}
}
