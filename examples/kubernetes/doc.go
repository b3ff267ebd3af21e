// Package kubernetes holds no code: it is the home of the example manifests in
// this directory (deployment.yaml, service.yaml, secret.example.yaml, the
// Kustomize component sidecar/ and the kustomizations add-to-deployment/,
// statefulset/ and scaled/) and of the tests that render them with the pinned
// kustomize, decode them strictly into the Kubernetes API types and check the
// properties the sidecar relies on; scaled/'s nats.conf is loaded by
// nats-server's own parser and run as a three-server cluster. It is a module of its own so that the sidecar's
// go.mod does not depend on the Kubernetes API.
package kubernetes
