package wire

import "crypto/tls"

// SSLStatus is what MariaDB's Ssl_version and Ssl_cipher status variables
// say of a TLS connection: OpenSSL's names, which MariaDB reports and
// clients compare with (the mariadb CLI's "Cipher in use"); "" without TLS.
func SSLStatus(cs *tls.ConnectionState) (version, cipher string) {
	if cs == nil {
		return "", ""
	}
	switch cs.Version {
	case tls.VersionTLS13:
		version = "TLSv1.3"
	case tls.VersionTLS12:
		version = "TLSv1.2"
	case tls.VersionTLS11:
		version = "TLSv1.1"
	case tls.VersionTLS10:
		version = "TLSv1"
	}
	if name, ok := openSSLName(cs.CipherSuite); ok {
		return version, name
	}
	// TLS 1.3's suites have the same names in both.
	return version, tls.CipherSuiteName(cs.CipherSuite)
}

// openSSLName is OpenSSL's name of a TLS 1.2 suite Go implements.
func openSSLName(id uint16) (string, bool) {
	switch id {
	case tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:
		return "ECDHE-ECDSA-AES128-GCM-SHA256", true
	case tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:
		return "ECDHE-RSA-AES128-GCM-SHA256", true
	case tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:
		return "ECDHE-ECDSA-AES256-GCM-SHA384", true
	case tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return "ECDHE-RSA-AES256-GCM-SHA384", true
	case tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256:
		return "ECDHE-ECDSA-CHACHA20-POLY1305", true
	case tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
		return "ECDHE-RSA-CHACHA20-POLY1305", true
	case tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:
		return "ECDHE-ECDSA-AES128-SHA", true
	case tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:
		return "ECDHE-ECDSA-AES256-SHA", true
	case tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:
		return "ECDHE-RSA-AES128-SHA", true
	case tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:
		return "ECDHE-RSA-AES256-SHA", true
	case tls.TLS_RSA_WITH_AES_128_GCM_SHA256:
		return "AES128-GCM-SHA256", true
	case tls.TLS_RSA_WITH_AES_256_GCM_SHA384:
		return "AES256-GCM-SHA384", true
	case tls.TLS_RSA_WITH_AES_128_CBC_SHA:
		return "AES128-SHA", true
	case tls.TLS_RSA_WITH_AES_256_CBC_SHA:
		return "AES256-SHA", true
	}
	return "", false
}
