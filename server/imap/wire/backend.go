package wire

import (
	"context"
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/mailbox/structure"
)

// NewSessionFunc makes the Session of a new connection. c gives the
// connection's identity and, as commands run, its enabled extensions. An
// error refuses the connection with "* BYE" and is logged.
type NewSessionFunc func(c *Conn) (Session, error)

// Session is the backend of one connection: everything IMAP does that is
// not syntax. The dispatcher parses, checks the connection state, calls one
// method per command, and writes the responses; the Session never sees
// wire syntax and never writes a tagged response.
//
// Contract:
//
//   - Methods are called one at a time. Poll is also called between
//     commands (IDLE, NOTIFY), never during another call.
//   - ctx is cancelled when the connection ends or the server shuts down,
//     and for LOGIN, SEARCH, SORT, THREAD and FETCH when the client hangs
//     up while they run.
//   - Errors: return *imap.Error (NO/BAD with a response code) for what
//     the client may read; one of type BYE is sent untagged and ends the
//     connection. Any other error is logged by the dispatcher with its
//     cause and answered NO [SERVERBUG]; a cancelled context is
//     NO [UNAVAILABLE]. Never put internal details in an imap.Error.
//   - Mailbox names are UTF-8, whatever the client's encoding. Sequence
//     sets may contain "*" (0) and be imap.SearchRes() ("$").
//   - Sequence numbers are the Session's business: it translates them
//     and decides when unilateral EXISTS/EXPUNGE/FETCH may be sent, and
//     writes them through the UpdateWriter it is given (EXPUNGE only where
//     PollPoint allows, RFC 9051 §7.5.1).
//   - Writers must not be used after the method returns.
//   - The dispatcher answers by itself: CAPABILITY, NOOP and CHECK (after
//     Poll), LOGOUT, ID, ENABLE, IDLE (with Poll), STARTTLS, COMPRESS,
//     and the syntax and state errors of every command.
type Session interface {
	// Close is called once when the connection ends, in whatever state:
	// wipe keys, release the selected mailbox.
	Close() error

	// Login checks a password (LOGIN, AUTHENTICATE PLAIN). It is only
	// called on TLS connections unless Options.InsecureAuth. The
	// dispatcher wipes password when Login returns; do not keep it.
	// A failure is NO [AUTHENTICATIONFAILED] (or [UNAVAILABLE]…).
	Login(ctx context.Context, username string, password []byte) error
	// Unauthenticate ends the authenticated state (RFC 8437): unselect,
	// wipe keys. The connection goes on, not authenticated.
	Unauthenticate(ctx context.Context) error

	// Namespace answers NAMESPACE (RFC 2342).
	Namespace(ctx context.Context) (*imap.NamespaceData, error)
	// Select selects or examines a mailbox. A mailbox selected before is
	// unselected first (the dispatcher writes "* OK [CLOSED]"), whatever
	// the outcome (RFC 9051 §6.3.2). With a QRESYNC parameter, the
	// dispatcher then calls SessionQResync.Resync.
	Select(ctx context.Context, cmd *Select) (*SelectData, error)
	// Unselect leaves the selected mailbox: CLOSE (expunge true: remove
	// \Deleted messages silently, unless read-only) or UNSELECT.
	Unselect(ctx context.Context, expunge bool) error
	Create(ctx context.Context, cmd *Create) (*CreateData, error)
	Delete(ctx context.Context, mailbox string) error
	Rename(ctx context.Context, cmd *Rename) error
	Subscribe(ctx context.Context, mailbox string, subscribe bool) error
	// List answers LIST and LSUB through w; LIST "" "" (the delimiter
	// query) too.
	List(ctx context.Context, w *ListWriter, cmd *List) error
	Status(ctx context.Context, cmd *Status) (*StatusData, error)
	// Append begins an APPEND to mailbox. It is called before the client
	// sends any message data: an error here (NO [TRYCREATE]) refuses the
	// command before a literal is accepted.
	Append(ctx context.Context, cmd *Append) (Appender, error)

	// Expunge removes \Deleted messages (EXPUNGE; UID EXPUNGE with a set)
	// and writes their EXPUNGE responses through w.
	Expunge(ctx context.Context, w *UpdateWriter, uids imap.UIDSet) error
	// Search evaluates cmd.Key. The dispatcher writes SEARCH or ESEARCH
	// (MIN, MAX, COUNT, ALL, PARTIAL) from the result; with
	// cmd.Return.Save the Session keeps it for "$".
	Search(ctx context.Context, cmd *Search) (*SearchData, error)
	// Fetch writes one FETCH response per message through w.
	Fetch(ctx context.Context, w *UpdateWriter, cmd *Fetch) error
	// Store changes flags and, unless silent, writes the new FLAGS of
	// each message through w. It returns the messages that
	// UNCHANGEDSINCE kept from changing (MODIFIED), or nil.
	Store(ctx context.Context, w *UpdateWriter, cmd *Store) (*StoreData, error)
	// Copy copies messages; the result gives COPYUID (nil if none).
	Copy(ctx context.Context, cmd *Copy) (*imap.CopyData, error)
	// Move moves messages (RFC 6851): it writes COPYUID with w.CopyUID,
	// then the EXPUNGE responses.
	Move(ctx context.Context, w *UpdateWriter, cmd *Copy) error

	// Updates returns a channel that receives a value whenever the
	// Session may have unilateral responses to give (a delivery, another
	// session's change). The dispatcher then calls Poll as soon as that is
	// allowed: at once during IDLE or when NOTIFY is active, else after the
	// next command. It may return nil (Poll then only runs after
	// commands). The dispatcher calls it once per connection.
	Updates() <-chan struct{}
	// Poll writes pending unilateral responses: EXISTS, RECENT, EXPUNGE
	// or VANISHED, FETCH FLAGS/MODSEQ, FLAGS, and NOTIFY's STATUS and
	// LIST. at says what is allowed. An *imap.Error of type BYE ends the
	// connection with that BYE (for a selected mailbox deleted by another
	// session, RFC 2180 §3.3: during IDLE at once, else after the command);
	// other errors are logged.
	Poll(ctx context.Context, w *UpdateWriter, at PollPoint) error
}

// SessionWaker is an optional interface of Session. OnUpdates is called
// once, after Updates, with a function that the Session then calls
// wherever it signals Updates, from any goroutine (it is quick and never
// blocks). The connection then waits for its client and for updates, in
// IDLE and with NOTIFY, on its one goroutine; for a Session without it, a
// second goroutine forwards Updates while it waits.
type SessionWaker interface {
	OnUpdates(f func())
}

// PollPoint says when Poll runs, and so whether EXPUNGE may be sent.
type PollPoint int

const (
	// PollAfterCommand: after a command that allows every response
	// (NOOP, CHECK, STATUS, COPY, UID FETCH…). Not after SELECT,
	// EXAMINE, CLOSE, UNSELECT and the commands of other states.
	PollAfterCommand PollPoint = iota
	// PollNoExpunge: after FETCH, STORE or SEARCH with sequence numbers
	// (RFC 9051 §7.5.1): no EXPUNGE, which would renumber messages.
	PollNoExpunge
	// PollIdle: during IDLE; everything is allowed.
	PollIdle
	// PollNotify: no command is in progress and NOTIFY is active (RFC
	// 5465 §3): EXPUNGE only for a SELECTED (not SELECTED-DELAYED)
	// filter, which the Session knows.
	PollNotify
)

// Appender receives the messages of one APPEND (several with MULTIAPPEND,
// RFC 3502; atomically: all or none).
type Appender interface {
	// AddMessage receives one message. It must read m.Body to io.EOF
	// (or fail); what it leaves unread is discarded. An error ends the
	// command: the dispatcher calls Abort.
	AddMessage(ctx context.Context, m *AppendMessage) error
	// Commit stores every message received. Its result gives APPENDUID.
	Commit(ctx context.Context) (*AppendData, error)
	// Abort drops what was received; it is called instead of Commit
	// after any error, and when the connection fails.
	Abort()
}

// AppendChecker is implemented by an Appender that can refuse a message
// before the client sends it: CheckMessage is called when a message's
// options and size are known and before "+" is sent for its literal (Size
// is -1 for CATENATE, before its first part). An error (NO [OVERQUOTA],
// NO [TOOBIG], BAD for a flag it refuses) ends the command without the
// client uploading the message.
type AppendChecker interface {
	CheckMessage(ctx context.Context, m *AppendMessage) error
}

// URLOpener is implemented by an Appender that resolves CATENATE's URL
// parts (RFC 4469 §3): an IMAP URL of a message or part the user may read.
// The Appender must bound the total message size itself (URL parts are not
// announced). A URL it cannot resolve is NO [BADURL url].
type URLOpener interface {
	OpenURL(ctx context.Context, url string) (io.ReadCloser, error)
}

// SessionQResync implements QRESYNC's SELECT parameter (RFC 7162 §3.2.5):
// after a successful SELECT or EXAMINE with cmd.QResync, and after the
// dispatcher wrote the mailbox data, Resync writes VANISHED (EARLIER) and
// the FETCH responses of the messages changed since cmd.QResync.ModSeq
// (RFC 7162 §3.2.5.1 orders them so). An error fails the command; the
// mailbox stays selected. QRESYNC is advertised only with it.
type SessionQResync interface {
	Resync(ctx context.Context, w *UpdateWriter, cmd *Select) error
}

// SessionExpungeModSeq is an optional interface of Session: its
// ExpungeModSeq runs EXPUNGE and UID EXPUNGE in place of Expunge and
// returns a mod-sequence for the tagged OK's [HIGHESTMODSEQ n] (RFC 7162
// §3.2.10 shows it), or 0 for none. The code is written only if the Poll
// after the command succeeds: n must be one the client may keep once
// that Poll's updates are written.
type SessionExpungeModSeq interface {
	ExpungeModSeq(ctx context.Context, w *UpdateWriter, uids imap.UIDSet) (uint64, error)
}

// SessionCondStore is an optional interface of Session: CondStoreEnabling
// is called before a CONDSTORE enabling command (RFC 7162 §3.1) that gets
// no UpdateWriter of its own runs while a mailbox is selected: SEARCH,
// SORT or THREAD with a MODSEQ key, STATUS or LIST RETURN (STATUS) with
// HIGHESTMODSEQ. Through w it may write "* OK [HIGHESTMODSEQ n]" for the
// selected mailbox, which the client may keep, so n must be one it may
// keep once the Poll after the command has written its updates. FETCH
// and STORE, which get a writer, do the same themselves. (ENABLE is
// refused while a mailbox is selected, RFC 5161 §3.1.) An error fails
// the command.
type SessionCondStore interface {
	CondStoreEnabling(ctx context.Context, w *UpdateWriter) error
}

// SessionQuota implements QUOTA (RFC 9208). QUOTA is advertised only when
// the Session has these methods.
type SessionQuota interface {
	// GetQuota answers GETQUOTA: the quota root's usage and limits.
	GetQuota(ctx context.Context, root string) (*QuotaData, error)
	// GetQuotaRoot answers GETQUOTAROOT: the roots of mailbox, and the
	// quota of each.
	GetQuotaRoot(ctx context.Context, mailbox string) (roots []string, quotas []QuotaData, err error)
	// SetQuota answers SETQUOTA; a Session without QUOTASET returns
	// NO [NOPERM].
	SetQuota(ctx context.Context, cmd *SetQuota) (*QuotaData, error)
}

// SessionSort implements SORT (RFC 5256) and so ESORT and CONTEXT=SORT
// (RFC 5267), which the dispatcher formats from the sorted result.
type SessionSort interface {
	Sort(ctx context.Context, cmd *Sort) (*SearchData, error)
}

// SessionThread implements THREAD (RFC 5256) with the algorithms of
// ThreadAlgorithms.
type SessionThread interface {
	ThreadAlgorithms() []imap.ThreadAlgorithm
	Thread(ctx context.Context, cmd *Thread) ([]ThreadNode, error)
}

// SessionNotify implements NOTIFY (RFC 5465). Notify replaces the
// notification settings (cmd.None clears them); with cmd.Status it writes
// the initial STATUS responses through w. After a successful NOTIFY SET
// the dispatcher polls between commands whenever Updates signals.
type SessionNotify interface {
	Notify(ctx context.Context, w *UpdateWriter, cmd *Notify) error
}

// SessionSearchContext implements CONTEXT=SEARCH (RFC 5267): a SEARCH or
// SORT with RETURN (UPDATE) keeps its result current, reporting changes in
// Poll with UpdateWriter.SearchUpdate; CancelUpdate ends that.
type SessionSearchContext interface {
	CancelUpdate(ctx context.Context, tags []string) error
}

// SelectData is the result of SELECT and EXAMINE.
type SelectData struct {
	Flags          []imap.Flag
	PermanentFlags []imap.Flag // nil: none can be changed
	Exists         uint32
	Recent         uint32 // sent to IMAP4rev1 clients only
	// FirstUnseen is the sequence number of the first unseen message, or
	// 0; IMAP4rev1 clients only.
	FirstUnseen uint32
	UIDNext     imap.UID
	UIDValidity uint32
	// HighestModSeq is sent when CONDSTORE is advertised; 0 means the
	// mailbox keeps no mod-sequences (NOMODSEQ).
	HighestModSeq uint64
	MailboxID     string // OBJECTID; "" if none
	ReadOnly      bool   // READ-ONLY (EXAMINE, or no write permission)
	// List is the mailbox's LIST data; IMAP4rev2 clients get it (RFC
	// 9051 §6.3.2).
	List *ListData
}

// ListData is one LIST or LSUB response.
type ListData struct {
	Mailbox   string
	Delim     rune // 0: flat namespace (NIL)
	Attrs     []imap.MailboxAttr
	ChildInfo bool   // CHILDINFO ("SUBSCRIBED") (RFC 5258 §4)
	OldName   string // OLDNAME (RFC 5465 §5.4); "" if none
	// Status is LIST-STATUS's data (RFC 5819), written as a STATUS
	// response after the LIST one with the items the command asked for.
	Status *StatusData
}

// StatusData holds a mailbox's status; only the items asked for are
// written.
type StatusData struct {
	Mailbox        string
	Messages       uint32
	Recent         uint32
	UIDNext        imap.UID
	UIDValidity    uint32
	Unseen         uint32
	Deleted        uint32
	Size           int64
	DeletedStorage int64
	HighestModSeq  uint64
	MailboxID      string
	// AppendLimit is the mailbox's limit; 0 means Limits.AppendLimit.
	AppendLimit int64
}

// CreateData is the result of CREATE.
type CreateData struct {
	MailboxID string // OBJECTID's MAILBOXID; "" if none
}

// AppendData is the result of APPEND: APPENDUID (RFC 4315), with one UID
// per message of a MULTIAPPEND.
type AppendData struct {
	UIDValidity uint32
	UIDs        imap.UIDSet
}

// StoreData is the result of STORE.
type StoreData struct {
	// Modified is the set (in the command's numbering) that
	// UNCHANGEDSINCE refused; nil if none (RFC 7162 §3.1.3).
	Modified imap.NumSet
}

// SearchData is the result of SEARCH or SORT: message numbers (UIDs for
// the UID forms) in result order (ascending for SEARCH, sorted for SORT).
type SearchData struct {
	Nums []uint32
	// ModSeq is the highest mod-sequence of the results, sent when the
	// search used MODSEQ (RFC 7162 §3.1.5); 0 if none.
	ModSeq uint64
}

// ThreadNode is one message of a THREAD result and its replies. Num 0 is
// a missing parent, whose children are siblings under it.
type ThreadNode struct {
	Num      uint32
	Children []ThreadNode
}

// QuotaResource is one resource of a quota root.
type QuotaResource struct {
	Name  imap.QuotaResourceType
	Usage int64
	Limit int64
}

// QuotaData is one QUOTA response.
type QuotaData struct {
	Root      string
	Resources []QuotaResource
}

// The structure of a message: server/mailbox builds these (sealed in its
// summaries) and this package writes them, so they are the types of the
// shared leaf package structure.
type (
	// Envelope is a message's ENVELOPE (RFC 9051 §7.5.2).
	Envelope = structure.Envelope
	// Address is one address of an ENVELOPE; a group is a start marker
	// (Mailbox the group name, Host "") and an end marker (all empty).
	Address = structure.Address
	// Param is one parameter of a MIME header (its order is kept).
	Param = structure.Param
	// BodyStructure describes one MIME part for BODY and BODYSTRUCTURE.
	BodyStructure = structure.BodyStructure
)
