// Package autocrypt adds an Autocrypt header (Autocrypt Level 1) with
// the sender's own OpenPGP public key to the mail sealmail's users
// send, so that the recipients' mail programs can encrypt their replies
// to the key that sealmail seals the user's mail with.
//
// Header is an smtp.Transform. It adds
//
//	Autocrypt: addr=alice@example.org; keydata=
//	 mQINBF…
//
// when all of these hold, and nothing otherwise:
//
//   - the From: field has exactly one address, the authenticated
//     account's own (Autocrypt §2.1 ties the header to the From address;
//     an alias is left out, as the account's key names the account
//     address only);
//   - the message has no Autocrypt field already (the user's mail
//     program, with a key of its own, has the last word: two would make
//     recipients ignore both);
//   - the account has not turned it off (`sealmail user set ADDRESS
//     --autocrypt=false`, store.Account.AutocryptOff);
//   - the account's key is valid now and can encrypt.
//
// keydata is the key reduced as Autocrypt §2.1.1 asks: the primary key
// with its direct-key self-signatures, the user ID of the account's
// address with its newest self-signature, and the encryption subkey in
// force with its binding signature; other user IDs, other subkeys and
// third-party certifications are left out. prefer-encrypt is not sent
// (the server does not know the user's preference). The reduced key is
// cached per account and key fingerprint.
//
// Implementation notes:
//   - Only the header section is read, at most MaxHeaderBytes of it; a
//     larger one gets no header (the signer refuses such a message).
//   - The public key comes from the store's public view of the account;
//     nothing secret is read.
//   - Lock order: Header.mu is a leaf.
package autocrypt
