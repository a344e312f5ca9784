package wire

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

// Command is one parsed command. Mailbox names in every argument type are
// UTF-8 (decoded from modified UTF-7 for IMAP4rev1 clients); "INBOX" is
// upper case. Sequence sets use go-imap's convention: 0 is "*", and
// imap.SearchRes() is "$" (RFC 5182).
type Command struct {
	Tag  string
	Name string // upper case, without "UID": "FETCH" for UID FETCH
	UID  bool   // the command was prefixed with UID
	// Args is nil for commands without arguments, else a pointer to the
	// type documented with each command name in parse.go (for example
	// *Fetch for FETCH and UID FETCH).
	Args any
}

// Login is LOGIN's arguments. The dispatcher wipes Password after the
// Session's Login returns.
type Login struct {
	Username string
	Password []byte
}

// Authenticate is AUTHENTICATE's arguments (RFC 9051 §6.2.2, SASL-IR RFC
// 4959).
type Authenticate struct {
	Mechanism       string // upper case
	InitialResponse []byte // decoded; nil when none was sent ("=" is empty, non-nil)
}

// Enable is ENABLE's arguments (RFC 5161).
type Enable struct {
	Caps []imap.Cap // upper case, as sent
}

// IDParam is one field of the client's ID (RFC 2971).
type IDParam struct {
	Key   string
	Value string
	Nil   bool // the value was NIL
}

// ID is ID's arguments; Params is nil for "ID NIL".
type ID struct {
	Params []IDParam
}

// QResync is the QRESYNC parameter of SELECT/EXAMINE (RFC 7162 §3.2.5).
type QResync struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   imap.UIDSet // nil if absent
	// SeqMatch is the optional (known-sequence-set known-uid-set) pair;
	// both nil if absent.
	SeqMatchSeqs imap.SeqSet
	SeqMatchUIDs imap.UIDSet
}

// Select is the arguments of SELECT and EXAMINE.
type Select struct {
	Mailbox   string
	ReadOnly  bool     // EXAMINE
	CondStore bool     // (CONDSTORE), RFC 7162 §3.1.8
	QResync   *QResync // (QRESYNC (…)); nil if absent
}

// Create is CREATE's arguments; SpecialUse is CREATE-SPECIAL-USE's USE
// list (RFC 6154 §3).
type Create struct {
	Mailbox    string
	SpecialUse []imap.MailboxAttr
}

// MailboxArg is the one argument of DELETE, SUBSCRIBE, UNSUBSCRIBE and
// GETQUOTAROOT.
type MailboxArg struct {
	Mailbox string
}

// Rename is RENAME's arguments.
type Rename struct {
	Mailbox string
	NewName string
}

// StatusItems are the items of STATUS and LIST RETURN (STATUS (…)).
type StatusItems struct {
	Messages, Recent, UIDNext, UIDValidity, Unseen bool
	Deleted                                        bool // RFC 9051 / QUOTA
	Size                                           bool // STATUS=SIZE (RFC 8438)
	AppendLimit                                    bool // APPENDLIMIT (RFC 7889)
	DeletedStorage                                 bool // QUOTA (RFC 9208)
	HighestModSeq                                  bool // CONDSTORE (RFC 7162)
	MailboxID                                      bool // OBJECTID (RFC 8474)
}

// Status is STATUS's arguments.
type Status struct {
	Mailbox string
	Items   StatusItems
}

// ListOptions are LIST-EXTENDED's selection and return options (RFC 5258,
// RFC 6154, RFC 5819).
type ListOptions struct {
	SelectSubscribed     bool
	SelectRemote         bool
	SelectRecursiveMatch bool
	SelectSpecialUse     bool

	ReturnSubscribed bool
	ReturnChildren   bool
	ReturnSpecialUse bool
	ReturnStatus     *StatusItems // nil if not asked
}

// List is the arguments of LIST and LSUB. Patterns are UTF-8; a pattern
// that was not valid in the client's encoding is dropped (it cannot match
// anything), so Patterns may be empty while the client sent some. A LIST
// with one empty pattern asks for the hierarchy delimiter (RFC 9051
// §6.3.9); Patterns is then [""].
type List struct {
	Ref      string
	Patterns []string
	LSUB     bool // LSUB (RFC 3501 §6.3.9)
	Options  ListOptions
	// Extended reports that the command used LIST-EXTENDED syntax
	// (selection or return options, or several patterns).
	Extended bool
}

// AppendMessage is one message of an APPEND. Its content is read from
// Body, which streams from the connection: a plain literal of Size bytes,
// or with CATENATE the concatenation of its parts (Size is then -1 and
// URL parts are resolved through Appender.OpenURL).
type AppendMessage struct {
	Flags []imap.Flag
	Date  time.Time // zero if not given
	// Binary reports a literal8 (~{n}, RFC 3516), or the UTF8 form of RFC
	// 6855 §4: the message may contain NUL or 8-bit data.
	Binary bool
	// UTF8 reports APPEND's UTF8 (…) form (RFC 6855 §4).
	UTF8 bool
	Size int64
	Body BodyReader
}

// BodyReader streams an APPEND message from the connection. Read returns
// io.EOF at the message's end. Bytes are allocated by the caller's
// buffers as they arrive, never from the announced size.
type BodyReader interface {
	Read(p []byte) (int, error)
}

// Append is APPEND's arguments as the Session sees them when the command
// begins; the messages follow through the Appender (see Session.Append).
type Append struct {
	Mailbox string
}

// SearchOp is the kind of a SearchKey.
type SearchOp int

// Search keys (RFC 9051 §6.4.4 and extensions). Flag keys are normalised:
// ANSWERED is SearchFlag with Value "\Answered", UNANSWERED SearchNotFlag,
// KEYWORD k SearchFlag k, RECENT SearchFlag "\Recent", NEW is
// And(Flag \Recent, NotFlag \Seen), OLD NotFlag \Recent.
const (
	SearchAll                SearchOp = iota // ALL
	SearchAnd                                // Keys all match (a parenthesised list, or the whole command)
	SearchOr                                 // OR: Keys[0] or Keys[1]
	SearchNot                                // NOT Keys[0]
	SearchSeqSet                             // sequence-set: Set (imap.SeqSet or imap.SearchRes())
	SearchUID                                // UID Set (imap.UIDSet or imap.SearchRes())
	SearchFlag                               // has flag Value
	SearchNotFlag                            // lacks flag Value
	SearchBcc                                // BCC Value
	SearchCc                                 // CC Value
	SearchFrom                               // FROM Value
	SearchTo                                 // TO Value
	SearchSubject                            // SUBJECT Value
	SearchBody                               // BODY Value
	SearchText                               // TEXT Value
	SearchHeader                             // HEADER Field Value
	SearchBefore                             // BEFORE Date (internal date)
	SearchOn                                 // ON Date
	SearchSince                              // SINCE Date
	SearchSentBefore                         // SENTBEFORE Date (Date: header)
	SearchSentOn                             // SENTON Date
	SearchSentSince                          // SENTSINCE Date
	SearchLarger                             // LARGER Num
	SearchSmaller                            // SMALLER Num
	SearchModSeq                             // MODSEQ [entry type] Num (RFC 7162)
	SearchOlder                              // OLDER Num seconds (WITHIN, RFC 5032)
	SearchYounger                            // YOUNGER Num seconds
	SearchSavedBefore                        // SAVEDBEFORE Date (SAVEDATE, RFC 8514)
	SearchSavedOn                            // SAVEDON Date
	SearchSavedSince                         // SAVEDSINCE Date
	SearchSavedDateSupported                 // SAVEDATESUPPORTED
	SearchEmailID                            // EMAILID Value (OBJECTID, RFC 8474)
	SearchThreadID                           // THREADID Value
)

// SearchKey is one node of a search program. Strings are UTF-8 (converted
// from the command's CHARSET). Dates are midnight UTC of the day given;
// comparisons use dates only (RFC 9051 §6.4.4).
type SearchKey struct {
	Op    SearchOp
	Value string      // strings, flags, object IDs
	Field string      // HEADER's field name
	Date  time.Time   // date keys
	Num   uint64      // LARGER, SMALLER, OLDER, YOUNGER, MODSEQ
	Set   imap.NumSet // SearchSeqSet, SearchUID
	Keys  []SearchKey // SearchAnd, SearchOr (2), SearchNot (1)
	// ModSeqEntry and ModSeqType are MODSEQ's optional entry name and
	// type ("priv", "shared", "all").
	ModSeqEntry string
	ModSeqType  string
}

// Partial is a PARTIAL range (RFC 5267 §4.4): the results at positions
// First through Last, counting from 1. Negative positions count from the
// end (-1 is the last; RFC 9394); both have the same sign and
// |First| <= |Last|.
type Partial struct {
	First, Last int64
}

// SearchReturn are the RETURN options of SEARCH and SORT (ESEARCH RFC
// 4731, SEARCHRES RFC 5182, CONTEXT RFC 5267).
type SearchReturn struct {
	Min, Max, All, Count bool
	Save                 bool     // SAVE: keep the result for "$"
	Update               bool     // UPDATE: keep the result current (CONTEXT); implies ALL when alone
	Context              bool     // CONTEXT hint
	Partial              *Partial // PARTIAL
	// ESearch reports that RETURN was given: the result is an ESEARCH
	// response. Without it, IMAP4rev2 clients also get ESEARCH (ALL).
	ESearch bool
}

// Search is SEARCH's arguments. Key is a SearchAnd of the command's keys.
type Search struct {
	UID     bool   // UID SEARCH: the result is UIDs
	Tag     string // the command's tag (ESEARCH correlator, CONTEXT updates)
	Charset string // upper case; "" if not given
	Return  SearchReturn
	Key     SearchKey
}

// SortKey is a SORT criterion (RFC 5256 §3, SORT=DISPLAY RFC 5957).
type SortKey string

// Sort keys.
const (
	SortArrival     SortKey = "ARRIVAL"
	SortCc          SortKey = "CC"
	SortDate        SortKey = "DATE"
	SortFrom        SortKey = "FROM"
	SortSize        SortKey = "SIZE"
	SortSubject     SortKey = "SUBJECT"
	SortTo          SortKey = "TO"
	SortDisplayFrom SortKey = "DISPLAYFROM"
	SortDisplayTo   SortKey = "DISPLAYTO"
)

// SortCriterion is one criterion of SORT.
type SortCriterion struct {
	Key     SortKey
	Reverse bool
}

// Sort is SORT's arguments (RFC 5256, ESORT RFC 5267).
type Sort struct {
	UID      bool
	Tag      string
	Criteria []SortCriterion
	Charset  string
	Return   SearchReturn
	Key      SearchKey
}

// Thread is THREAD's arguments (RFC 5256).
type Thread struct {
	UID       bool
	Algorithm imap.ThreadAlgorithm
	Charset   string
	Key       SearchKey
}

// BodySection is one BODY[…], BINARY[…] or RFC822… item of FETCH.
type BodySection struct {
	// Binary is BINARY[…] (RFC 3516): the part decoded from its
	// Content-Transfer-Encoding, written as a literal8.
	Binary bool
	// Peek is BODY.PEEK / BINARY.PEEK / RFC822.HEADER: \Seen is not set.
	Peek bool
	// RFC822 is "RFC822", "RFC822.HEADER" or "RFC822.TEXT" for those
	// IMAP4rev1 items, which the response names as the client did; they
	// are BODY[], BODY.PEEK[HEADER] and BODY[TEXT] otherwise.
	RFC822 string
	Part   []int
	// Specifier is "", HEADER, TEXT or MIME; HEADER.FIELDS [.NOT] is
	// HEADER with HeaderFields set.
	Specifier       imap.PartSpecifier
	HeaderFields    []string // as sent, for the response to echo
	HeaderFieldsNot bool
	Partial         *imap.SectionPartial // <offset.size>; nil if absent
}

// FetchItems are the data items of FETCH (macros expanded), and of NOTIFY
// MessageNew.
type FetchItems struct {
	UID, Flags, InternalDate, RFC822Size, Envelope bool
	Body                                           bool // BODY: non-extensible structure
	BodyStructure                                  bool // BODYSTRUCTURE
	ModSeq                                         bool // MODSEQ (RFC 7162)
	SaveDate                                       bool // SAVEDATE (RFC 8514)
	EmailID, ThreadID                              bool // OBJECTID (RFC 8474)
	Preview                                        bool // PREVIEW (RFC 8970)
	PreviewLazy                                    bool // PREVIEW (LAZY)
	Sections                                       []*BodySection
	BinarySize                                     [][]int // BINARY.SIZE[part]
}

// SetsSeen reports whether fetching these items sets \Seen (a non-peek
// body section, RFC 9051 §6.4.5).
func (f *FetchItems) SetsSeen() bool {
	for _, s := range f.Sections {
		if !s.Peek {
			return true
		}
	}
	return false
}

// Fetch is FETCH's arguments. For UID FETCH, Items.UID is always set
// (RFC 9051 §6.4.9); with CHANGEDSINCE, Items.ModSeq is.
type Fetch struct {
	UID          bool // UID FETCH: Set is a UID set
	Set          imap.NumSet
	Items        FetchItems
	ChangedSince uint64 // CHANGEDSINCE (RFC 7162 §3.1.4); 0 if absent
	Vanished     bool   // VANISHED (RFC 7162 §3.2.6)
}

// Store is STORE's arguments.
type Store struct {
	UID   bool
	Set   imap.NumSet
	Flags imap.StoreFlags
	// UnchangedSince is UNCHANGEDSINCE (RFC 7162 §3.1.3) when
	// HasUnchangedSince (it may be 0).
	UnchangedSince    uint64
	HasUnchangedSince bool
}

// Copy is the arguments of COPY and MOVE.
type Copy struct {
	UID     bool
	Set     imap.NumSet
	Mailbox string
}

// Expunge is UID EXPUNGE's argument (RFC 4315 §2.1); plain EXPUNGE has
// none.
type Expunge struct {
	UIDs imap.UIDSet
}

// QuotaRoot is GETQUOTA's argument.
type QuotaRoot struct {
	Root string
}

// QuotaLimit is one resource limit of SETQUOTA.
type QuotaLimit struct {
	Resource imap.QuotaResourceType // upper case
	Limit    uint64
}

// SetQuota is SETQUOTA's arguments (RFC 9208 §4.3).
type SetQuota struct {
	Root   string
	Limits []QuotaLimit
}

// NotifyFilter names the mailboxes of a NOTIFY event group (RFC 5465 §6).
type NotifyFilter string

// Notify filters.
const (
	NotifySelected        NotifyFilter = "SELECTED"
	NotifySelectedDelayed NotifyFilter = "SELECTED-DELAYED"
	NotifyInboxes         NotifyFilter = "INBOXES"
	NotifyPersonal        NotifyFilter = "PERSONAL"
	NotifySubscribed      NotifyFilter = "SUBSCRIBED"
	NotifySubtree         NotifyFilter = "SUBTREE"
	NotifyMailboxes       NotifyFilter = "MAILBOXES"
)

// NotifyEvent is one event of a NOTIFY group.
type NotifyEvent struct {
	// Name is the event as RFC 5465 §5 spells it: MessageNew,
	// MessageExpunge, FlagChange, AnnotationChange, MailboxName,
	// SubscriptionChange, MailboxMetadataChange, ServerMetadataChange.
	Name string
	// Fetch is MessageNew's fetch attributes; nil if none.
	Fetch *FetchItems
}

// NotifyGroup is one event group of NOTIFY SET.
type NotifyGroup struct {
	Filter    NotifyFilter
	Mailboxes []string      // SUBTREE and MAILBOXES
	Events    []NotifyEvent // empty for NONE
}

// Notify is NOTIFY's arguments (RFC 5465).
type Notify struct {
	None   bool // NOTIFY NONE
	Status bool // the STATUS indicator
	Groups []NotifyGroup
}

// CancelUpdate is CANCELUPDATE's arguments (RFC 5267 §4.2).
type CancelUpdate struct {
	Tags []string
}

// Compress is COMPRESS's argument (RFC 4978).
type Compress struct {
	Mechanism string // upper case
}
