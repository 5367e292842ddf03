//! Cryptography of G-IKEv2 on OpenSSL (in progress).
