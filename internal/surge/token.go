package surge

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// TokenClaims are the claims of a Surge token the operator needs.
type TokenClaims struct {
	// Subject is the id of the user the token is for.
	Subject   string
	ExpiresAt time.Time
}

// ParseTokenClaims reads the subject and expiry of a token Surge issued.
//
// It does NOT verify the signature: Surge publishes no public key the
// operator could verify with. That is safe only because the token comes
// straight from Surge over an authenticated connection; never use this on a
// token received from anyone else.
//
// Errors never contain the token, which is a credential.
func ParseTokenClaims(token string) (TokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return TokenClaims{}, errors.New("surge token: not a JWT: want 3 dot-separated parts")
	}
	var header map[string]any
	if err := decodeSegment(parts[0], &header); err != nil {
		return TokenClaims{}, errors.New("surge token: header " + err.Error())
	}
	var claims struct {
		Sub string   `json:"sub"`
		Exp *float64 `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return TokenClaims{}, errors.New("surge token: claims " + err.Error())
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil || parts[2] == "" {
		return TokenClaims{}, errors.New("surge token: signature is not base64url")
	}
	if claims.Sub == "" {
		return TokenClaims{}, errors.New("surge token: no sub claim")
	}
	if claims.Exp == nil {
		return TokenClaims{}, errors.New("surge token: no exp claim")
	}
	seconds := int64(*claims.Exp)
	nanos := int64((*claims.Exp - float64(seconds)) * float64(time.Second))
	return TokenClaims{Subject: claims.Sub, ExpiresAt: time.Unix(seconds, nanos)}, nil
}

// decodeSegment decodes one base64url JSON part of a JWT. Its errors are
// fixed texts: the decoders' own would quote bytes of the token.
func decodeSegment(segment string, into any) error {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(segment, "="))
	if err != nil {
		return errors.New("is not base64url")
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return errors.New("is not a JSON object")
	}
	return nil
}
