package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"skiff.dev/skiff/apiserver"
	"skiff.dev/skiff/identity"
)

func newTokenCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the join tokens nodes register with",
		Long: "A join token lets a node agent register with the cluster: skiff1:<sha256 of the server's\n" +
			"certificate>:<id>.<secret>. The server keeps only the SHA-256 of each secret, in a Secret\n" +
			"in " + apiserver.SystemNamespace + ". A token works until it expires or is revoked; nodes\n" +
			"that registered with it stay registered.",
		Args: cobra.NoArgs,
	}
	addKubeconfigFlag(cmd.PersistentFlags(), &cf)
	cmd.AddCommand(newTokenCreateCommand(&cf), newTokenListCommand(&cf), newTokenRevokeCommand(&cf))
	return cmd
}

// addKubeconfigFlag adds --kubeconfig alone, for commands whose other
// clientFlags (--namespace) mean nothing or something else.
func addKubeconfigFlag(fs *pflag.FlagSet, cf *clientFlags) {
	fs.StringVar(&cf.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, ~/.kube/config, or the local server's admin.kubeconfig)")
}

// clientset is a typed client for the cluster cf locates, and its
// configuration.
func clientset(cf *clientFlags) (kubernetes.Interface, *rest.Config, error) {
	cfg, _, err := cf.config()
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	return cs, cfg, nil
}

func newTokenCreateCommand(cf *clientFlags) *cobra.Command {
	ttl := 24 * time.Hour
	var description string
	role := apiserver.TokenRoleNode
	cmd := &cobra.Command{
		Use:   "create [--ttl 24h] [--description TEXT] [--role node|server]",
		Short: "Create a join token and print it",
		Long: "skiff token create prints the new token alone on stdout, and its id and expiry on stderr.\n" +
			"The token's certificate hash is that of the certificate authority in the kubeconfig, which\n" +
			"for skiff is the server's own serving certificate.",
		Example: "  skiff token create --ttl 1h --description 'rack 4'\n" +
			"  TOKEN=$(skiff token create --ttl 0)   # never expires",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 0 {
				return fmt.Errorf("--ttl %s: want a positive duration, or 0 for a token that never expires", ttl)
			}
			if role != apiserver.TokenRoleNode && role != apiserver.TokenRoleServer {
				return fmt.Errorf("--role %q: want %s (an agent joins) or %s (a server joins the cluster of servers)", role, apiserver.TokenRoleNode, apiserver.TokenRoleServer)
			}
			cs, cfg, err := clientset(cf)
			if err != nil {
				return err
			}
			cert, err := servingCertificate(cfg)
			if err != nil {
				return err
			}
			var expires time.Time
			if ttl > 0 {
				expires = time.Now().Add(ttl)
			}
			tok, err := createJoinToken(cmd.Context(), cs, cert, expires, description, role)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.String())
			fmt.Fprintf(cmd.ErrOrStderr(), "skiff token: created %s token %s, expires %s\n", role, tok.ID, formatExpiry(expires))
			return nil
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", ttl, "how long the token works; 0 for ever (until revoked)")
	cmd.Flags().StringVar(&description, "description", "", "what the token is for, shown by skiff token list")
	cmd.Flags().StringVar(&role, "role", role, "what the token joins: node (an agent: skiff agent --join-token) or server (another server: skiff server --join --token)")
	return cmd
}

// servingCertificate is the first certificate of the kubeconfig's
// certificate authority: the certificate a join token pins.
func servingCertificate(cfg *rest.Config) (*x509.Certificate, error) {
	data := cfg.CAData
	if len(data) == 0 && cfg.CAFile != "" {
		var err error
		if data, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("kubeconfig certificate authority: %w", err)
		}
	}
	for len(data) > 0 {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig certificate authority: %w", err)
		}
		return cert, nil
	}
	return nil, fmt.Errorf("the kubeconfig for %s has no certificate authority: a join token pins the server's certificate, so it needs one", cfg.Host)
}

// tokenCreateAttempts bounds retries on an id already taken (one in 36^6).
const tokenCreateAttempts = 3

// createJoinToken makes a token for cert and records it.
func createJoinToken(ctx context.Context, cs kubernetes.Interface, cert *x509.Certificate, expires time.Time, description, role string) (identity.JoinToken, error) {
	secrets := cs.CoreV1().Secrets(apiserver.SystemNamespace)
	for range tokenCreateAttempts {
		tok, err := identity.NewJoinTokenWithID(cert)
		if err != nil {
			return identity.JoinToken{}, err
		}
		rec := apiserver.JoinTokenRecord(tok, expires, description)
		if role == apiserver.TokenRoleServer {
			rec.Data[apiserver.JoinTokenRoleKey] = []byte(role)
		}
		_, err = secrets.Create(ctx, rec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return identity.JoinToken{}, fmt.Errorf("recording join token %s: %w", tok.ID, err)
		}
		return tok, nil
	}
	return identity.JoinToken{}, fmt.Errorf("recording a join token: %d ids in a row were taken", tokenCreateAttempts)
}

// formatExpiry is an expiry as token create and list show it.
func formatExpiry(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func newTokenListCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the join tokens: id, role (node or server), expiry, status (valid, expired, revoked) and description",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, _, err := clientset(cf)
			if err != nil {
				return err
			}
			list, err := cs.CoreV1().Secrets(apiserver.SystemNamespace).List(cmd.Context(), metav1.ListOptions{LabelSelector: apiserver.JoinTokenLabel})
			if err != nil {
				return fmt.Errorf("listing join tokens: %w", err)
			}
			printTokens(cmd.OutOrStdout(), joinTokenRows(list.Items, time.Now()))
			return nil
		},
	}
}

// tokenRow is one line of skiff token list.
type tokenRow struct {
	id, role, expires, status, description string
}

// joinTokenRows are the rows for the records among secrets, oldest first.
func joinTokenRows(secrets []corev1.Secret, now time.Time) []tokenRow {
	var recs []corev1.Secret
	for _, s := range secrets {
		if s.Type == apiserver.JoinTokenSecretType {
			recs = append(recs, s)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i].CreationTimestamp, recs[j].CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return recs[i].Name < recs[j].Name
	})
	rows := make([]tokenRow, 0, len(recs))
	for _, s := range recs {
		expires := "never"
		if v, ok := s.Data[apiserver.JoinTokenExpirationKey]; ok {
			expires = string(v)
		}
		role := apiserver.TokenRoleNode
		if r, ok := s.Data[apiserver.JoinTokenRoleKey]; ok {
			role = string(r)
		}
		rows = append(rows, tokenRow{
			id:          string(s.Data[apiserver.JoinTokenIDKey]),
			role:        role,
			expires:     expires,
			status:      tokenStatus(&s, now),
			description: string(s.Data[apiserver.JoinTokenDescriptionKey]),
		})
	}
	return rows
}

// tokenStatus is what the server would make of a token of rec at now:
// revoked, expired or valid. It decides as the server does, so that an
// unreadable expiry is expired.
func tokenStatus(rec *corev1.Secret, now time.Time) string {
	if _, ok := rec.Data[apiserver.JoinTokenRevokedKey]; ok {
		return "revoked"
	}
	if v, ok := rec.Data[apiserver.JoinTokenExpirationKey]; ok {
		exp, err := time.Parse(time.RFC3339, string(v))
		if err != nil || !now.Before(exp) {
			return "expired"
		}
	}
	return "valid"
}

func printTokens(out io.Writer, rows []tokenRow) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tEXPIRES\tSTATUS\tDESCRIPTION")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.id, r.role, r.expires, r.status, r.description)
	}
	tw.Flush()
}

// errNoSuchToken is a revocation of a token that has no record.
var errNoSuchToken = errors.New("no such join token (skiff token list shows them)")

func newTokenRevokeCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID|TOKEN",
		Short: "Revoke a join token: no node may register with it any more",
		Long: "skiff token revoke marks a token's record revoked, at once. It takes the token's id (as\n" +
			"skiff token list shows it; the first-start token's is " + identity.InitialJoinTokenID + ") or the whole token.",
		Example: "  skiff token revoke 4k2x9q\n" +
			"  skiff token revoke " + identity.InitialJoinTokenID,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if tok, err := identity.ParseJoinToken(id); err == nil {
				id = tok.TokenID()
			}
			cs, _, err := clientset(cf)
			if err != nil {
				return err
			}
			return revokeJoinToken(cmd.Context(), cs, id, time.Now(), cmd.OutOrStdout())
		},
	}
}

// revokeJoinToken marks token id's record revoked at now. A token revoked
// already is left as it is, and said so.
func revokeJoinToken(ctx context.Context, cs kubernetes.Interface, id string, now time.Time, out io.Writer) error {
	secrets := cs.CoreV1().Secrets(apiserver.SystemNamespace)
	rec, err := secrets.Get(ctx, apiserver.JoinTokenSecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && rec.Type != apiserver.JoinTokenSecretType) {
		return fmt.Errorf("join token %q: %w", id, errNoSuchToken)
	}
	if err != nil {
		return fmt.Errorf("join token %q: %w", id, err)
	}
	if at, ok := rec.Data[apiserver.JoinTokenRevokedKey]; ok {
		fmt.Fprintf(out, "join token %s was already revoked at %s\n", id, at)
		return nil
	}
	// stringData: the server folds it into data, so the patch needs no
	// base64 and leaves the other keys alone.
	at := now.UTC().Format(time.RFC3339)
	patch, err := json.Marshal(map[string]map[string]string{"stringData": {apiserver.JoinTokenRevokedKey: at}})
	if err != nil {
		return err
	}
	if _, err := secrets.Patch(ctx, rec.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("revoking join token %q: %w", id, err)
	}
	fmt.Fprintf(out, "join token %s revoked at %s\n", id, at)
	return nil
}
