package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestFilterEval runs `sealbench filter` on a small generated corpus in
// the SpamAssassin layout: it must read both labels, train, and report
// precision and recall before and after the moves.
func TestFilterEval(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"spam-1", "easy-ham-1"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 60 {
		spam := fmt.Sprintf("From spammer@x.test  Thu Aug 22 13:17:22 2002\nFrom: <deals%d@shop.test>\nSubject: cheap pills offer %d\n\nBuy cheap pills, discount pharmacy, claim your prize now %d\n", i, i, i)
		ham := fmt.Sprintf("From: <bob@work.test>\nSubject: project meeting %d\n\nThe project meeting moves to Tuesday; minutes and agenda attached %d\n", i, i)
		os.WriteFile(filepath.Join(dir, "spam-1", fmt.Sprintf("%05d.txt", i)), []byte(spam), 0o600)
		os.WriteFile(filepath.Join(dir, "spam-1", fmt.Sprintf("%05d.json", i)), []byte("{}"), 0o600) // ignored
		os.WriteFile(filepath.Join(dir, "easy-ham-1", fmt.Sprintf("%05d.txt", i)), []byte(ham), 0o600)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"filter", "-corpus", dir, "-test", "40", "-seed-train", "4", "-moves", "10"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		`corpus .*: 120 messages; test set 40 \(\d+ spam\), organisation trained with 2 spam \+ 2 ham`,
		`before: precision [01]\.\d{3}, recall [01]\.\d{3}`,
		`after \d+ moves \(\d+ messages read\): precision 1\.000, recall 1\.000`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if code := run(context.Background(), []string{"filter"}, &out, &errb); code != 2 {
		t.Errorf("without -corpus: exit %d", code)
	}
}
