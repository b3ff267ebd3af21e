package devcert

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadCredentials(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	first, err := LoadCredentials(dir, false)
	if err != nil || !first.Created {
		t.Fatalf("LoadCredentials(new dir) = %+v, %v; want new credentials", first, err)
	}
	again, err := LoadCredentials(dir, false)
	if err != nil || again.Created || again.APIKey != first.APIKey || again.WebhookSecret != first.WebhookSecret || again.CertFile != first.CertFile {
		t.Fatalf("LoadCredentials(again) = %+v, %v; want the kept ones", again, err)
	}
	fresh, err := LoadCredentials(dir, true)
	if err != nil || !fresh.Created || fresh.APIKey == first.APIKey || fresh.WebhookSecret == first.WebhookSecret {
		t.Fatalf("LoadCredentials(regenerate) = %+v, %v; want new ones", fresh, err)
	}
	// A damaged file is replaced, never used.
	if err := os.WriteFile(filepath.Join(dir, CredentialsFile), []byte(`{"apiKey":"x"`), 0o600); err != nil {
		t.Fatal(err)
	}
	repaired, err := LoadCredentials(dir, false)
	if err != nil || !repaired.Created || repaired.APIKey == "x" {
		t.Fatalf("LoadCredentials(damaged file) = %+v, %v; want new credentials", repaired, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, CredentialsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v; want mode 0600", fi, err)
	}
}
