package surge_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge"
	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

func TestCreateTokenExpiryIsReadable(t *testing.T) {
	issuedAt := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	f := newFixture(t, emulator.Options{Now: func() time.Time { return issuedAt }})
	user := f.emu.PutUser(testAccount, emulator.User{FirstName: "Tok"})

	for _, tt := range []struct {
		duration int
		want     time.Duration
	}{
		{600, 10 * time.Minute},
		{0, 15 * time.Minute}, // Surge's default
	} {
		token, err := f.client.CreateToken(t.Context(), user.ID, tt.duration)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := surge.ParseTokenClaims(token)
		if err != nil {
			t.Fatal(err)
		}
		if claims.Subject != user.ID || !claims.ExpiresAt.Equal(issuedAt.Add(tt.want)) {
			t.Errorf("duration %d: claims %+v, want subject %s expiring %v", tt.duration, claims, user.ID, issuedAt.Add(tt.want))
		}
	}

	if _, err := f.client.CreateToken(t.Context(), user.ID, 5000); !surge.IsInvalid(err) {
		t.Errorf("duration above the maximum: %v, want invalid", err)
	}
}

func TestParseTokenClaimsRejectsMalformedTokens(t *testing.T) {
	segment := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	header := segment(`{"alg":"EdDSA","kid":"sgn_1","typ":"JWT"}`)
	signature := segment("signature-bytes")

	tests := map[string]string{
		"two parts":         header + "." + segment(`{"sub":"usr_1","exp":1}`),
		"claims not base64": header + ".%%%secret%%%." + signature,
		"claims not JSON":   header + "." + segment("secret-not-json") + "." + signature,
		"header not JSON":   segment("secret") + "." + segment(`{"sub":"usr_1","exp":1}`) + "." + signature,
		"no sub":            header + "." + segment(`{"exp":1700000000}`) + "." + signature,
		"no exp":            header + "." + segment(`{"sub":"usr_secret"}`) + "." + signature,
		"empty signature":   header + "." + segment(`{"sub":"usr_1","exp":1}`) + ".",
	}
	for name, token := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := surge.ParseTokenClaims(token)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, part := range strings.Split(token, ".") {
				if len(part) > 4 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q contains part of the token", err)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q contains decoded token content", err)
			}
		})
	}
}
