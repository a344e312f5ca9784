// Package filter is sealmail's spam classifier, a shared service: the
// MX (server/smtp/inbound) asks it to score each message before the
// message is sealed, the only moment the server sees plaintext, and the
// access protocols (server/imap) train it when a user moves mail into or
// out of Junk. The command line trains it in bulk from mbox files.
//
// The classifier is Robinson's with Fisher's combining (classify.go),
// as in SpamBayes and bogofilter, over tokens (tokenize.go) of the first
// MiB of a message: subject and sender words, the sender's domain, the
// mailer, MIME structure, attachment types, body words of text and HTML
// parts (charsets and transfer encodings decoded) and link hosts. Each
// message is scored against two models, the organisation's and the
// recipient's own, whose counts add up.
//
// # What is kept, and who can read it
//
// A model (model.go) holds, per token, a keyed hash (HMAC-SHA256, 96
// bits kept) and its spam and ham counts, and per trained message a
// keyed hash of its content and the verdict, so that a message moved
// back out of Junk is unlearnt rather than counted twice. Token text is
// never stored, logged or traced. The whole model is sealed with
// AES-256-GCM and padded to a power of two (at least 64 KiB), bound to
// its owner. Both keys derive (HKDF-SHA256) from the model's key F:
//
//   - An account's F is random and stored only sealed under the
//     account's index key (crypto.Keyring.SealIndex), which only the
//     account's password (or app password, or recovery code) unlocks.
//     At each login (Unlocked) the service opens F with the session's
//     keyring and keeps the derived keys, never F itself, in memory
//     until shutdown (or until MaxUsers newer accounts push it out), so
//     that deliveries can use the model without the user's key. A
//     stolen data directory yields no token, no count and no message
//     hash of any account's model; the sealed size says only roughly
//     how many distinct tokens it holds. After a restart an account's
//     model is used from its first login on; until then its mail is
//     scored with the organisation's model alone.
//   - The organisation's F is stored in the clear beside its model: the
//     server must read it at every delivery with no secret at hand. A
//     thief of the data directory can therefore test guessed words
//     against it (though never list them). It is trained by the
//     operator (`sealmail filter train --org`) and, only with
//     Options.ShareTraining, by users' moves as well.
//
// Implementation notes:
//   - Only a session's unlocked keyring can train an account's model
//     (Learn takes it); deliveries read models and never write them.
//   - Writes are read-modify-write with the store's generation check
//     (PutFilterModel), one at a time per model in this process, so
//     concurrent trainings (two IMAP sessions, the CLI) lose nothing.
//   - Decrypted models are cached (LRU, Options.CacheBytes) for at most
//     five minutes, and replaced at once by this process's own writes.
//   - Lock order: Service.mu is a leaf; the per-model training locks
//     are taken before any store call and never while holding mu.
package filter
