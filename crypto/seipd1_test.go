package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// sealSEIPD1 makes a SEIPDv1 packet holding one literal data packet of
// msg, with go-crypto, sealed with cipher c and key.
func sealSEIPD1(t testing.TB, c packet.CipherFunction, key, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	cfg := &packet.Config{DefaultCipher: c}
	enc, err := packet.SerializeSymmetricallyEncrypted(&buf, c, false, packet.CipherSuite{}, key, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lit, err := packet.SerializeLiteral(enc, true, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes: partial-length packets of every shape.
	for rest := msg; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%7919)
		if _, err := lit.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := lit.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// errFraming: the SEIPD packet's header does not parse (go-crypto).
var errFraming = errors.New("packet header")

// readSEIPD opens sealed (a SEIPD packet) with c and key through
// openData and reads it in reads of at most chunk bytes. It reports
// whether seipd1Reader did the decryption.
func readSEIPD(sealed []byte, c packet.CipherFunction, key []byte, chunk int) (plain []byte, ours bool, err error) {
	p, err := packet.NewReader(bytes.NewReader(sealed)).Next()
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", errFraming, err)
	}
	edp, ok := p.(packet.EncryptedDataPacket)
	if !ok {
		return nil, false, errors.New("not an encrypted data packet")
	}
	r, err := openData(edp, c, key)
	if err != nil {
		return nil, false, err
	}
	if pr, ok := r.(*plainReader); ok {
		_, ours = pr.dec.(*seipd1Reader)
	}
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		plain = append(plain, buf[:n]...)
		if err == io.EOF {
			return plain, ours, nil
		}
		if err != nil {
			return plain, ours, err
		}
	}
}

// TestSEIPD1 checks the SEIPDv1 decrypter against go-crypto's encrypter
// for every AES key size, sizes around its block, MDC and buffer edges,
// and read sizes from one byte up. (Other ciphers, which go-crypto still
// decrypts, are in TestGnuPGInterop: go-crypto seals SEIPDv1 with AES
// only.)
func TestSEIPD1(t *testing.T) {
	sizes := []int{0, 1, 2, 15, 16, 17, 21, 22, 23, 37, 38, 39, 4095, 4096, 4097,
		seipd1Chunk - 41, seipd1Chunk - 40, seipd1Chunk - 18, seipd1Chunk, seipd1Chunk + 1, 3*seipd1Chunk + 5, 200 << 10}
	ciphers := []struct {
		c    packet.CipherFunction
		ours bool
	}{{packet.CipherAES128, true}, {packet.CipherAES192, true}, {packet.CipherAES256, true}}
	for _, ci := range ciphers {
		key := randomBytes(t, ci.c.KeySize())
		for _, n := range sizes {
			msg := randomBytes(t, n)
			sealed := sealSEIPD1(t, ci.c, key, msg)
			for _, chunk := range []int{1, 7, 22, 4096, 1 << 20} {
				if chunk == 1 && n > 5000 {
					continue
				}
				got, ours, err := readSEIPD(sealed, ci.c, key, chunk)
				if err != nil {
					t.Fatalf("cipher %d, %d bytes, reads of %d: %v", ci.c, n, chunk, err)
				}
				if ours != ci.ours {
					t.Fatalf("cipher %d: decrypted by seipd1Reader: %v, want %v", ci.c, ours, ci.ours)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("cipher %d, %d bytes, reads of %d: plaintext differs", ci.c, n, chunk)
				}
			}
		}
	}
}

// TestSEIPD1Tampered flips every bit position's byte and cuts the packet
// at every length: each must fail with ErrIntegrity, never yield EOF.
func TestSEIPD1Tampered(t *testing.T) {
	key := randomBytes(t, 32)
	for _, n := range []int{0, 1, 300} {
		msg := randomBytes(t, n)
		sealed := sealSEIPD1(t, packet.CipherAES256, key, msg)
		check := func(what string, b []byte) {
			t.Helper()
			_, _, err := readSEIPD(b, packet.CipherAES256, key, 4096)
			if err == nil {
				t.Fatalf("%d bytes, %s: opened", n, what)
			}
			// A header that no longer parses (the version octet) is
			// refused before any decryption.
			if !errors.Is(err, ErrIntegrity) && !errors.Is(err, errFraming) {
				t.Fatalf("%d bytes, %s: err = %v", n, what, err)
			}
		}
		// Byte 0 is the packet tag, 1 its length.
		for i := 2; i < len(sealed); i++ {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(sealed)
				b[i] ^= bit
				check("flip@"+itoa(i), b)
			}
		}
		for i := 3; i < len(sealed); i++ {
			check("cut@"+itoa(i), sealed[:i])
		}
	}
}

// TestSEIPD1WrongKey: a wrong session key fails at the MDC.
func TestSEIPD1WrongKey(t *testing.T) {
	key := randomBytes(t, 32)
	sealed := sealSEIPD1(t, packet.CipherAES256, key, randomBytes(t, 1000))
	_, _, err := readSEIPD(sealed, packet.CipherAES256, randomBytes(t, 32), 4096)
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("err = %v, want ErrIntegrity", err)
	}
	_, _, err = readSEIPD(sealed, packet.CipherAES256, key[:16], 4096)
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("short key: err = %v, want ErrIntegrity", err)
	}
}
