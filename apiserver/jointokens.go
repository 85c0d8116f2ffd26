package apiserver

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"

	"skiff.dev/skiff/identity"
)

// Join tokens are recorded as Secrets of JoinTokenSecretType in
// SystemNamespace, one per token, named JoinTokenSecretName(id). A record
// holds the SHA-256 of the token's secret, never the secret itself, and
// (being a Secret) is encrypted at rest. `skiff token create` writes one;
// `skiff token revoke` marks it revoked.
const (
	JoinTokenSecretType corev1.SecretType = "skiff.dev/join-token"
	// The record's keys.
	JoinTokenIDKey          = "id"
	JoinTokenHashKey        = "secret-sha256"
	JoinTokenExpirationKey  = "expiration"
	JoinTokenDescriptionKey = "description"
	JoinTokenRevokedKey     = "revoked"
	// JoinTokenRoleKey says what a token joins: nodes (TokenRoleNode, also
	// when absent) or servers (TokenRoleServer).
	JoinTokenRoleKey = "role"
	// JoinTokenLabel marks the records, for listing.
	JoinTokenLabel = "skiff.dev/join-token"
	// initialTokenRecorded, in the data directory, says the first-start
	// token's record was made once: a revoked one is not made again.
	initialTokenRecorded = "join-token.recorded"
)

// What a join token lets its holder join.
const (
	// TokenRoleNode registers a Node (an agent).
	TokenRoleNode = "node"
	// TokenRoleServer joins a server to the cluster of servers: it gets
	// the cluster's keys and an etcd membership, and nothing else.
	TokenRoleServer = "server"
)

// JoinTokenSecretName is the name of token id's record.
func JoinTokenSecretName(id string) string { return "join-token-" + id }

// JoinTokenRecord is the record of t: it expires at expires (never when
// zero).
func JoinTokenRecord(t identity.JoinToken, expires time.Time, description string) *corev1.Secret {
	data := map[string][]byte{
		JoinTokenIDKey:   []byte(t.TokenID()),
		JoinTokenHashKey: []byte(hex.EncodeToString(t.SecretHash())),
	}
	if !expires.IsZero() {
		data[JoinTokenExpirationKey] = []byte(expires.UTC().Format(time.RFC3339))
	}
	if description != "" {
		data[JoinTokenDescriptionKey] = []byte(description)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: JoinTokenSecretName(t.TokenID()), Namespace: SystemNamespace,
			Labels: map[string]string{JoinTokenLabel: "true"},
		},
		Type: JoinTokenSecretType,
		Data: data,
	}
}

// validateJoinTokenRecord checks a record's fields, so that a mistyped one
// is refused rather than never matching.
func validateJoinTokenRecord(s *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	data := field.NewPath("data")
	if s.Namespace != SystemNamespace {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "namespace"), s.Namespace, "join tokens live in "+SystemNamespace))
	}
	id := string(s.Data[JoinTokenIDKey])
	if s.Name != JoinTokenSecretName(id) {
		errs = append(errs, field.Invalid(data.Key(JoinTokenIDKey), id, fmt.Sprintf("must match the name %s", s.Name)))
	}
	if h, err := hex.DecodeString(string(s.Data[JoinTokenHashKey])); err != nil || len(h) != 32 {
		errs = append(errs, field.Invalid(data.Key(JoinTokenHashKey), "<redacted>", "must be the hex SHA-256 of the token's secret"))
	}
	if r, ok := s.Data[JoinTokenRoleKey]; ok && string(r) != TokenRoleNode && string(r) != TokenRoleServer {
		errs = append(errs, field.NotSupported(data.Key(JoinTokenRoleKey), string(r), []string{TokenRoleNode, TokenRoleServer}))
	}
	for _, k := range []string{JoinTokenExpirationKey, JoinTokenRevokedKey} {
		if v, ok := s.Data[k]; ok {
			if _, err := time.Parse(time.RFC3339, string(v)); err != nil {
				errs = append(errs, field.Invalid(data.Key(k), string(v), "must be an RFC 3339 time"))
			}
		}
	}
	return errs
}

// joinTokens checks presented tokens against their records.
type joinTokens struct {
	// secrets reads the records; set once storage exists.
	secrets rest.Getter
	now     func() time.Time
}

// errUnknownToken is a token with no record or a wrong secret: a guess.
var errUnknownToken = errors.New("invalid join token")

// check returns nil for a token that may register a node, errUnknownToken
// for one that is not known, and otherwise why a known token is refused
// (expired, revoked).
func (j *joinTokens) check(ctx context.Context, t identity.JoinToken) error {
	_, err := j.checkRole(ctx, t)
	return err
}

// checkRole is check that also says what the token joins (TokenRoleNode
// or TokenRoleServer).
func (j *joinTokens) checkRole(ctx context.Context, t identity.JoinToken) (string, error) {
	if j == nil || j.secrets == nil {
		return "", errUnknownToken
	}
	ctx = genericapirequest.WithNamespace(ctx, SystemNamespace)
	// A read from etcd, not the watch cache: a revocation holds from the
	// moment it is acknowledged. Registrations are rare, guesses limited.
	obj, err := j.secrets.Get(ctx, JoinTokenSecretName(t.TokenID()), &metav1.GetOptions{})
	if err != nil {
		return "", errUnknownToken
	}
	rec, ok := obj.(*corev1.Secret)
	if !ok || rec.Type != JoinTokenSecretType {
		return "", errUnknownToken
	}
	want, err := hex.DecodeString(string(rec.Data[JoinTokenHashKey]))
	if err != nil || subtle.ConstantTimeCompare(want, t.SecretHash()) != 1 {
		return "", errUnknownToken
	}
	if v, ok := rec.Data[JoinTokenRevokedKey]; ok {
		return "", fmt.Errorf("join token %s was revoked at %s; ask an admin for a new one (skiff token create)", t.TokenID(), v)
	}
	if v, ok := rec.Data[JoinTokenExpirationKey]; ok {
		exp, err := time.Parse(time.RFC3339, string(v))
		if err != nil || !j.now().Before(exp) {
			return "", fmt.Errorf("join token %s expired at %s; ask an admin for a new one (skiff token create)", t.TokenID(), v)
		}
	}
	if string(rec.Data[JoinTokenRoleKey]) == TokenRoleServer {
		return TokenRoleServer, nil
	}
	return TokenRoleNode, nil
}

// recordInitialToken makes the record of the first-start token once, so
// that it works until revoked.
func recordInitialToken(dir dataDir, token identity.JoinToken, secrets rest.Creater) genericapiserver.PostStartHookFunc {
	return func(hookCtx genericapiserver.PostStartHookContext) error {
		marker := dir.file(initialTokenRecorded)
		if _, err := os.Stat(marker); err == nil {
			return nil
		}
		ctx := genericapirequest.WithNamespace(hookCtx, SystemNamespace)
		err := poll(ctx, func() error {
			_, err := secrets.Create(ctx, JoinTokenRecord(token, time.Time{}, "made at the server's first start"), nil, &metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("record the initial join token: %w", err)
		}
		return identity.WriteFileAtomic(marker, []byte("the initial join token's record was made; revoking it deletes nothing here\n"), 0o600)
	}
}
