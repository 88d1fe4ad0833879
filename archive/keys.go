package archive

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ErrNoSecretKey is wrapped when a key file holds no secret key able to
// decrypt (a public certificate, or a secret key whose encryption subkeys
// are stubs kept on a smartcard).
var ErrNoSecretKey = errors.New("no secret decryption key")

// ErrBadPassphrase is wrapped when a passphrase does not unlock a secret key.
var ErrBadPassphrase = errors.New("wrong passphrase")

// ErrNotRecipient is wrapped when none of the given secret keys is among an
// archive's recipients.
var ErrNotRecipient = errors.New("key is not a recipient of the archive")

// maxKeyFile bounds what is read from a key file: certificates with many
// signatures are a few hundred KiB, nothing legitimate comes near this.
const maxKeyFile = 16 << 20

// readKeyFile reads the armored or binary OpenPGP keys in path.
func readKeyFile(path string) (openpgp.EntityList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("key file %s: larger than %d bytes", path, maxKeyFile)
	}
	var el openpgp.EntityList
	// Binary OpenPGP starts with a packet tag, which has its top bit set;
	// armor may be preceded by text (sq and gpg write comments there).
	if len(b) > 0 && b[0]&0x80 == 0 {
		el, err = readArmoredKeys(b)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: not an OpenPGP key: %w", path, err)
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("key file %s: no OpenPGP key in it", path)
	}
	return el, nil
}

// readArmoredKeys reads every armored key block in b: `gpg --export --armor`
// writes one block for many keys, but concatenated exports hold several.
func readArmoredKeys(b []byte) (openpgp.EntityList, error) {
	var el openpgp.EntityList
	for {
		i := bytes.Index(b, []byte("-----BEGIN "))
		if i < 0 {
			break
		}
		b = b[i:]
		end := bytes.Index(b, []byte("-----END "))
		if end < 0 {
			return nil, fmt.Errorf("armor: no END line")
		}
		if nl := bytes.IndexByte(b[end:], '\n'); nl >= 0 {
			end += nl + 1
		} else {
			end = len(b)
		}
		block, err := armor.Decode(bytes.NewReader(b[:end]))
		if err != nil {
			return nil, fmt.Errorf("armor: %w", err)
		}
		switch block.Type {
		case openpgp.PublicKeyType, openpgp.PrivateKeyType:
		default:
			return nil, fmt.Errorf("armor block is %q, not a key", block.Type)
		}
		keys, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		el = append(el, keys...)
		b = b[end:]
	}
	return el, nil
}

func fingerprint(pk *packet.PublicKey) string {
	return strings.ToUpper(hex.EncodeToString(pk.Fingerprint))
}

// encryptionKey returns the key of e to encrypt to at now: the newest valid
// subkey flagged for encryption, else the primary key if it is one. Unlike
// openpgp.Entity.EncryptionKey it accepts keys flagged for storage
// encryption only (sq key generate --can-encrypt=storage): an archive is
// storage.
func encryptionKey(e *openpgp.Entity, now time.Time) (*packet.PublicKey, bool) {
	ss, id := e.PrimarySelfSignature()
	if ss == nil || e.PrimaryKey.KeyExpired(ss, now) || e.Revoked(now) || ss.SigExpired(now) || (id != nil && id.Revoked(now)) {
		return nil, false
	}
	var best *openpgp.Subkey
	for i := range e.Subkeys {
		sk := &e.Subkeys[i]
		if sk.Sig == nil || !sk.Sig.FlagsValid || !(sk.Sig.FlagEncryptCommunications || sk.Sig.FlagEncryptStorage) ||
			!sk.PublicKey.PubKeyAlgo.CanEncrypt() || sk.PublicKey.KeyExpired(sk.Sig, now) || sk.Sig.SigExpired(now) || sk.Revoked(now) {
			continue
		}
		if best == nil || sk.Sig.CreationTime.After(best.Sig.CreationTime) {
			best = sk
		}
	}
	if best != nil {
		return best.PublicKey, true
	}
	if ss.FlagsValid && (ss.FlagEncryptCommunications || ss.FlagEncryptStorage) && e.PrimaryKey.PubKeyAlgo.CanEncrypt() {
		return e.PrimaryKey, true
	}
	return nil, false
}

// LoadRecipients reads the OpenPGP certificates in the given files, armored
// or binary, as written by gpg --export or sq (which armors by default). A
// file may hold several certificates, or secret keys (only their public
// part is used). Every certificate must have a usable encryption key (not
// expired or revoked), else the error names the file and the fingerprint.
// v6 certificates are accepted; RecipientWarnings reports them.
func LoadRecipients(paths ...string) (openpgp.EntityList, error) {
	if len(paths) == 0 {
		return nil, errors.New("recipients: no certificate file given")
	}
	now := time.Now()
	var all openpgp.EntityList
	for _, p := range paths {
		el, err := readKeyFile(p)
		if err != nil {
			return nil, fmt.Errorf("recipients: %w", err)
		}
		for _, e := range el {
			if _, ok := encryptionKey(e, now); !ok {
				return nil, fmt.Errorf("recipients: key file %s: key %s has no usable encryption key (expired, revoked or signing-only)", p, fingerprint(e.PrimaryKey))
			}
		}
		all = append(all, el...)
	}
	return all, nil
}

// RecipientWarnings returns one human-readable warning for each recipient
// that not every OpenPGP implementation can decrypt to: gpg 2.2/2.4 and
// sq 0.27 cannot even import v6 keys.
func RecipientWarnings(el openpgp.EntityList) []string {
	var w []string
	for _, e := range el {
		if e.PrimaryKey.Version >= 6 {
			w = append(w, fmt.Sprintf("key %s is a v%d key: only sq ≥ 1.0 and cryophile can decrypt this archive with it, gpg 2.2/2.4 and sq 0.27 cannot", fingerprint(e.PrimaryKey), e.PrimaryKey.Version))
		}
	}
	return w
}

// Fingerprints returns the fingerprints (upper-case hex) of the encryption
// keys a Writer encrypts to for el, in order: the values recorded in the
// manifest's encryption.recipients.
func Fingerprints(el openpgp.EntityList) []string {
	now := time.Now()
	var fps []string
	for _, e := range el {
		if k, ok := encryptionKey(e, now); ok {
			fps = append(fps, fingerprint(k))
		}
	}
	return fps
}

// decryptionKeys returns the private keys in e able to decrypt messages,
// stubs (gnu-dummy, smartcard) excluded.
func decryptionKeys(e *openpgp.Entity) []*packet.PrivateKey {
	var ks []*packet.PrivateKey
	for _, sk := range e.Subkeys {
		if sk.PrivateKey == nil || sk.PrivateKey.Dummy() || !sk.PublicKey.PubKeyAlgo.CanEncrypt() {
			continue
		}
		if sk.Sig != nil && sk.Sig.FlagsValid && !sk.Sig.FlagEncryptCommunications && !sk.Sig.FlagEncryptStorage {
			continue
		}
		ks = append(ks, sk.PrivateKey)
	}
	if e.PrivateKey != nil && !e.PrivateKey.Dummy() && e.PrimaryKey.PubKeyAlgo.CanEncrypt() {
		ks = append(ks, e.PrivateKey)
	}
	return ks
}

// LoadSecretKeys reads the armored or binary OpenPGP secret keys in path. A
// file holding no secret decryption key returns an error wrapping
// ErrNoSecretKey. If a decryption key is passphrase-protected, passphrase is
// called once and every decryption key is unlocked up front; a passphrase
// that does not unlock them returns an error wrapping ErrBadPassphrase.
// passphrase is not called for unprotected keys and may then be nil.
func LoadSecretKeys(path string, passphrase func() ([]byte, error)) (openpgp.EntityList, error) {
	el, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var keys []*packet.PrivateKey
	var locked []*packet.PrivateKey
	for _, e := range el {
		for _, k := range decryptionKeys(e) {
			keys = append(keys, k)
			if k.Encrypted {
				locked = append(locked, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key file %s: %w (a public certificate, or only stubs of secret keys held elsewhere)", path, ErrNoSecretKey)
	}
	if len(locked) == 0 {
		return el, nil
	}
	if passphrase == nil {
		return nil, fmt.Errorf("key file %s: key is passphrase-protected and no passphrase was given: %w", path, ErrBadPassphrase)
	}
	pw, err := passphrase()
	if err != nil {
		return nil, fmt.Errorf("key file %s: passphrase: %w", path, err)
	}
	defer clear(pw)
	for _, k := range locked {
		if err := k.Decrypt(pw); err != nil {
			return nil, fmt.Errorf("key file %s: key %s: %w", path, fingerprint(&k.PublicKey), ErrBadPassphrase)
		}
	}
	return el, nil
}

// keyConfig is the configuration of the keys GenerateKey makes: v4, legacy
// EdDSA primary key and ECDH cv25519 encryption subkey, AES-256 and SHA-256
// preferred, no AEAD advertised — the key format gpg 2.2 and sq 0.27 read.
func keyConfig() *packet.Config {
	return &packet.Config{
		Algorithm:     packet.PubKeyAlgoEdDSA,
		Curve:         packet.Curve25519,
		DefaultHash:   crypto.SHA256,
		DefaultCipher: packet.CipherAES256,
	}
}

// GenerateKey makes a new v4 OpenPGP key (ed25519 primary key, cv25519
// encryption subkey, no expiry) for the user ID "name <email>". Archives
// encrypted to it can be decrypted by gpg 2.2 and later.
func GenerateKey(name, email string) (*openpgp.Entity, error) {
	e, err := openpgp.NewEntity(name, "", email, keyConfig())
	if err != nil {
		return nil, fmt.Errorf("generate key for %s <%s>: %w", name, email, err)
	}
	return e, nil
}

// WritePublicKey writes e's public certificate to w, ASCII-armored.
func WritePublicKey(w io.Writer, e *openpgp.Entity) error {
	aw, err := armor.Encode(w, openpgp.PublicKeyType, nil)
	if err != nil {
		return err
	}
	if err := e.Serialize(aw); err != nil {
		return fmt.Errorf("serialize certificate %s: %w", fingerprint(e.PrimaryKey), err)
	}
	if err := aw.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// WriteSecretKey writes e's secret key to w, ASCII-armored. With a
// non-empty passphrase the secret key material is protected with it (e
// itself stays unlocked). e's secret keys must not be locked.
func WriteSecretKey(w io.Writer, e *openpgp.Entity, passphrase []byte) error {
	if len(passphrase) > 0 {
		if err := e.EncryptPrivateKeys(passphrase, keyConfig()); err != nil {
			return fmt.Errorf("protect key %s: %w", fingerprint(e.PrimaryKey), err)
		}
		defer e.DecryptPrivateKeys(passphrase)
	}
	aw, err := armor.Encode(w, openpgp.PrivateKeyType, nil)
	if err != nil {
		return err
	}
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		return fmt.Errorf("serialize secret key %s: %w", fingerprint(e.PrimaryKey), err)
	}
	if err := aw.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}
