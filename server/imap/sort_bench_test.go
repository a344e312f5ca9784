package imap

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Benchmarks of SORT and THREAD over the 10,000-message mailbox of
// bench_test.go: cold (right after delivery, so the command builds every
// summary with the private key) and warm (summaries stored).
//
//	go test -run '^$' -bench 'Sort|Thread' -benchtime 3x ./server/imap/

func sortDate(b *testing.B, c *imapclient.Client) {
	b.Helper()
	nums, err := c.Sort(&imapclient.SortOptions{
		SearchCriteria: &imap.SearchCriteria{},
		SortCriteria:   []imapclient.SortCriterion{{Key: imapclient.SortKeyDate}},
	}).Wait()
	if err != nil {
		b.Fatal(err)
	}
	if len(nums) != benchMessages {
		b.Fatalf("SORT gave %d messages", len(nums))
	}
}

func threadReferences(b *testing.B, c *imapclient.Client) {
	b.Helper()
	data, err := c.Thread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: &imap.SearchCriteria{}}).Wait()
	if err != nil {
		b.Fatal(err)
	}
	if len(data) == 0 {
		b.Fatal("THREAD gave nothing")
	}
}

// coldRuns runs cmd on a fresh copy of INBOX per iteration (copying and
// selecting untimed).
func coldRuns(b *testing.B, cmd func(*testing.B, *imapclient.Client)) {
	f := getBenchFixture(b)
	c := f.login(b, benchUser, benchPW)
	defer c.Close()
	ctx := context.Background()
	var cpu cpuMeter
	defer cpu.Report(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("Cold%d-%d", time.Now().UnixNano(), i)
		if err := f.freshCopy(ctx, name); err != nil {
			b.Fatal(err)
		}
		selectBench(b, c, name)
		b.StartTimer()
		cpu.Start()
		cmd(b, c)
		cpu.Stop()
		b.StopTimer()
		if err := c.Unselect().Wait(); err != nil {
			b.Fatal(err)
		}
		if err := c.Delete(name).Wait(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func warmRuns(b *testing.B, cmd func(*testing.B, *imapclient.Client)) {
	f := getBenchFixture(b)
	c := f.login(b, benchUser, benchPW)
	defer c.Close()
	f.warm(b, c)
	var cpu cpuMeter
	b.ResetTimer()
	cpu.Start()
	for b.Loop() {
		cmd(b, c)
	}
	cpu.Stop()
	cpu.Report(b)
}

func BenchmarkSortDateCold(b *testing.B)         { coldRuns(b, sortDate) }
func BenchmarkSortDateWarm(b *testing.B)         { warmRuns(b, sortDate) }
func BenchmarkThreadReferencesCold(b *testing.B) { coldRuns(b, threadReferences) }
func BenchmarkThreadReferencesWarm(b *testing.B) { warmRuns(b, threadReferences) }
