package imap

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestNoPlaintextAtRest: after APPEND, delivery and the building of
// summaries, no file under the data directory contains the canaries.
func TestNoPlaintextAtRest(t *testing.T) {
	env := newEnv(t)
	env.addUser(alice, alicePW)
	canaries := []string{"CanarySubjectQ7", "CanaryNameZ3", "CanaryBodyK9", "CanaryAttachW2"}
	msg := []byte("From: CanaryNameZ3 <alice@example.org>\r\nTo: bob@example.com\r\n" +
		"Subject: CanarySubjectQ7\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=zz\r\n\r\n" +
		"--zz\r\nContent-Type: text/plain\r\n\r\nCanaryBodyK9\r\n" +
		"--zz\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nCanaryAttachW2\r\n--zz--\r\n")
	env.deliver(alice, "", msg)
	c := env.dial(alice, alicePW)
	cmd := c.Append("Sent", int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Summaries, \Seen and a search over the body.
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Search(&imap.SearchCriteria{Text: []string{"canarybodyk9"}}, nil).Wait(); err != nil || len(res.AllSeqNums()) != 1 {
		t.Fatalf("search: %v %v", res, err)
	}
	env.srv.addedWG.Wait() // APPEND stores the summary in the background
	stored, err := env.messages(alice, "INBOX", storeListWithSummary())
	if err != nil || len(stored) != 1 || stored[0].Summary == nil {
		t.Fatalf("summary not stored: %v", err)
	}
	c.Logout().Wait()
	env.closeStore()

	files := 0
	err = filepath.WalkDir(env.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s contains %s", path, c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no files in data dir")
	}
	if bytes.Contains([]byte(env.logs.String()), []byte("Canary")) {
		t.Errorf("canary in logs")
	}
}
