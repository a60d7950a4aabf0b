"""The encrypted vault: conversations, settings and plugin data at rest.

Key hierarchy (``keyset``)::

    KEK  ── OS keychain item, or scrypt(passphrase, salt)            (keys.py)
     └─ master key  ── random, wrapped by the KEK in the header row
         ├─ one data key per conversation  ── wrapped by the master key
         └─ one data key for settings and plugin data
              └─ records: AES-256-GCM, bound to (table, row, key id, schema)  (crypto.py)

What deleting a conversation guarantees (crypto-shredding):

- Always: its messages and its wrapped data key are deleted and zeroed in the live
  file (``secure_delete``), the WAL is folded in and truncated, and the master key is
  replaced, so the live vault's keys cannot open that conversation in any older copy of
  the file. While another program holds an older snapshot open, SQLite cannot fold the
  WAL in: ``vault.db`` then still holds the old pages. That debt is recorded beside the
  file (``vault.db-checkpoint-owed``), warned about, and paid at the next open, write or
  close (``vault.status`` shows ``checkpoint_owed``).
- Keychain mode: the KEK is replaced too and the old keychain item deleted. A copy of
  the file taken before the deletion can then no longer be opened at all — not even
  with the live vault and the keychain in hand. (A backup of the keychain itself that
  still holds the old item would defeat this.)
- Passphrase mode: the passphrase plus the salt stored in the copy re-derive the old
  KEK, so a copy taken before the deletion still opens with the passphrase. Nothing
  stored in that copy can prevent it; changing the passphrase (``rotate``) makes old
  copies need the old passphrase.

In the clear: ids, key ids, conversation creation/update times, record sizes and counts.
Not detected: removal of whole records, or rolling the whole file back to an old copy.
"""

from daemon.vault.keys import KeychainKeySource, KeySource, PassphraseKeySource
from daemon.vault.store import Vault, vault_path

__all__ = ["KeySource", "KeychainKeySource", "PassphraseKeySource", "Vault", "vault_path"]
