// Package kubernetes holds no code: it is the home of the example manifests in
// this directory (deployment.yaml, service.yaml, secret.example.yaml) and of
// the test that decodes them strictly into the Kubernetes API types and
// checks the properties the sidecar relies on. It is a module of its own so
// that the sidecar's go.mod does not depend on the Kubernetes API.
package kubernetes
