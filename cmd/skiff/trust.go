package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"skiff.dev/skiff/apiserver/rbac"
	"skiff.dev/skiff/identity"
)

// The label and annotations of the bindings skiff trust makes.
const (
	// trustLabel, "true", marks the bindings skiff trust made.
	trustLabel = "skiff.dev/trust"
	// publicKeyAnnotation is the trusted key in standard base64, the form
	// skiff identity show prints.
	publicKeyAnnotation = "skiff.dev/public-key"
	// displayNameAnnotation is the key holder's name, when an identity
	// file gave it.
	displayNameAnnotation = "skiff.dev/display-name"
)

// trustNamePrefix begins the name of each binding skiff trust makes:
// skiff:trust:<role>:<key id>.
const trustNamePrefix = "skiff:trust:"

// trustRoles are the built-in roles --role knows by a short name.
var trustRoles = []struct{ short, clusterRole string }{
	{"admin", rbac.AdminRole},
	{"operator", rbac.OperatorRole},
	{"viewer", rbac.ViewerRole},
	{"mcp", rbac.MCPRole},
}

// clusterRoleFor is the ClusterRole --role names and the short name that
// goes into binding names: a built-in role by its short or its full name,
// any other ClusterRole by its name.
func clusterRoleFor(role string) (clusterRole, short string) {
	for _, r := range trustRoles {
		if role == r.short || role == r.clusterRole {
			return r.clusterRole, r.short
		}
	}
	return role, role
}

// trustBindingName is the name of the binding that trusts pub as the role
// whose short name is short.
func trustBindingName(short string, pub ed25519.PublicKey) string {
	return trustNamePrefix + short + ":" + identity.ID(pub)
}

// trustee is a key that skiff trust names, and its holder's name when an
// identity file gave one.
type trustee struct {
	pub  ed25519.PublicKey
	name string
}

// user is the name the API server knows the key by.
func (t trustee) user() string { return identity.KeyUserName(t.pub) }

// String is the key's user name, after the holder's name when known.
func (t trustee) String() string {
	if t.name == "" {
		return t.user()
	}
	return t.name + " (" + t.user() + ")"
}

// parseTrustee reads KEY|IDENTITY-FILE: a public key in standard base64,
// a key user name, or the path of an identity file.
func parseTrustee(arg string) (trustee, error) {
	if strings.HasPrefix(arg, identity.KeyUserPrefix) {
		pub, ok := identity.ParseKeyUserName(arg)
		if !ok {
			return trustee{}, fmt.Errorf("%q: not a key user name (%s and the key in unpadded base64url)", arg, identity.KeyUserPrefix)
		}
		return trustee{pub: pub}, nil
	}
	if pub, err := identity.ParsePublicKey(arg); err == nil {
		return trustee{pub: pub}, nil
	}
	p, err := identity.LoadPersonal(arg)
	if errors.Is(err, fs.ErrNotExist) {
		return trustee{}, fmt.Errorf("%q is neither a public key (standard base64, as skiff identity show prints it), a user name %s…, nor an identity file", arg, identity.KeyUserPrefix)
	}
	if err != nil {
		return trustee{}, err
	}
	return trustee{pub: p.Public(), name: p.Name}, nil
}

func newTrustCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Grant, list and remove the roles of personal identities' keys",
		Long: "skiff trust binds a key (skiff identity new makes one) to a ClusterRole, cluster-wide\n" +
			"(a ClusterRoleBinding) or in one namespace (a RoleBinding). --role takes admin, operator,\n" +
			"viewer or mcp for skiff's built-in roles, or the name of any ClusterRole. The API server\n" +
			"refuses to let you grant a role you do not hold yourself.",
		Args: cobra.NoArgs,
	}
	addKubeconfigFlag(cmd.PersistentFlags(), &cf)
	addServerFlag(cmd.PersistentFlags(), &cf)
	cmd.AddCommand(newTrustAddCommand(&cf), newTrustListCommand(&cf), newTrustRemoveCommand(&cf))
	return cmd
}

func newTrustAddCommand(cf *clientFlags) *cobra.Command {
	var role, namespace string
	cmd := &cobra.Command{
		Use:   "add KEY|IDENTITY-FILE --role ROLE [--namespace NS]",
		Short: "Trust a key as a role, cluster-wide or in one namespace",
		Example: "  skiff trust add MCowBQYDK2VwAyEA… --role operator\n" +
			"  skiff trust add ~/ada.identity --role viewer --namespace shop",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return errors.New("--role: which role? admin, operator, viewer, mcp, or a ClusterRole's name")
			}
			t, err := parseTrustee(args[0])
			if err != nil {
				return err
			}
			cs, _, err := clientset(cf)
			if err != nil {
				return err
			}
			if err := addTrust(cmd.Context(), cs, t, role, namespace, cmd.OutOrStdout()); err != nil {
				return err
			}
			warnMissingRole(cmd.Context(), cs, role, cmd.ErrOrStderr())
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "admin, operator, viewer, mcp, or a ClusterRole's name")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "grant the role in this namespace only (default: cluster-wide)")
	return cmd
}

// addTrust binds t to role, in namespace (cluster-wide when empty). A
// binding that exists already is left as it is, and said so. The server's
// refusal (such as of a grant of more than the caller holds) is returned
// as it is.
func addTrust(ctx context.Context, cs kubernetes.Interface, t trustee, role, namespace string, out io.Writer) error {
	clusterRole, short := clusterRoleFor(role)
	meta := metav1.ObjectMeta{
		Name:        trustBindingName(short, t.pub),
		Namespace:   namespace,
		Labels:      map[string]string{trustLabel: "true"},
		Annotations: map[string]string{publicKeyAnnotation: identity.EncodePublicKey(t.pub)},
	}
	if t.name != "" {
		meta.Annotations[displayNameAnnotation] = t.name
	}
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole}
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: t.user()}}
	var err error
	if namespace == "" {
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: roleRef, Subjects: subjects}, metav1.CreateOptions{})
	} else {
		_, err = cs.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: roleRef, Subjects: subjects}, metav1.CreateOptions{})
	}
	where := scopeText(namespace)
	switch {
	case apierrors.IsAlreadyExists(err):
		fmt.Fprintf(out, "%s is already trusted as %s %s (%s)\n", t, clusterRole, where, meta.Name)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(out, "trusted %s as %s %s (%s)\n", t, clusterRole, where, meta.Name)
	return nil
}

// warnMissingRole warns when the ClusterRole role names does not exist: a
// binding to it grants nothing until it does (a misspelt role, most
// likely). A role that cannot be read is not warned about.
func warnMissingRole(ctx context.Context, cs kubernetes.Interface, role string, stderr io.Writer) {
	clusterRole, _ := clusterRoleFor(role)
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx, clusterRole, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		fmt.Fprintf(stderr, "skiff trust: WARNING: there is no ClusterRole %q: the binding grants nothing until there is\n", clusterRole)
	}
}

// scopeText says where a binding in namespace grants its role.
func scopeText(namespace string) string {
	if namespace == "" {
		return "cluster-wide"
	}
	return "in namespace " + namespace
}

// trustEntry is one key bound by one trust binding.
type trustEntry struct {
	// namespace is the RoleBinding's; empty for a ClusterRoleBinding.
	namespace string
	// binding is the binding's name.
	binding string
	// role is the ClusterRole bound.
	role        string
	pub         ed25519.PublicKey
	displayName string
	created     time.Time
	// shared: the binding names other subjects too, so removing this key
	// takes it out of the binding rather than deleting the binding.
	shared bool
}

// trustEntries reads every binding that names a key user, cluster-wide
// and in every namespace: skiff trust's own and any other (kubectl's, a
// chart's), since the server trusts a key by any binding that names it.
func trustEntries(ctx context.Context, cs kubernetes.Interface) ([]trustEntry, error) {
	opts := metav1.ListOptions{}
	crbs, err := cs.RbacV1().ClusterRoleBindings().List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing trust ClusterRoleBindings: %w", err)
	}
	rbs, err := cs.RbacV1().RoleBindings(metav1.NamespaceAll).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("listing trust RoleBindings: %w", err)
	}
	var entries []trustEntry
	for _, b := range crbs.Items {
		entries = appendTrustEntries(entries, &b.ObjectMeta, b.RoleRef, b.Subjects)
	}
	for _, b := range rbs.Items {
		entries = appendTrustEntries(entries, &b.ObjectMeta, b.RoleRef, b.Subjects)
	}
	return entries, nil
}

// appendTrustEntries appends an entry for each key user a binding names;
// other subjects are not skiff trust's.
func appendTrustEntries(entries []trustEntry, m *metav1.ObjectMeta, ref rbacv1.RoleRef, subjects []rbacv1.Subject) []trustEntry {
	for _, s := range subjects {
		pub, ok := identity.ParseKeyUserName(s.Name)
		if s.Kind != rbacv1.UserKind || !ok {
			continue
		}
		role := ref.Name
		if ref.Kind != "ClusterRole" {
			role = ref.Kind + "/" + ref.Name
		}
		entries = append(entries, trustEntry{
			namespace: m.Namespace, binding: m.Name, role: role, pub: pub,
			displayName: m.Annotations[displayNameAnnotation], created: m.CreationTimestamp.Time,
			shared: len(subjects) > 1,
		})
	}
	return entries
}

func newTrustListCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the trusted keys: id, name, role, namespace (* for cluster-wide) and age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, _, err := clientset(cf)
			if err != nil {
				return err
			}
			entries, err := trustEntries(cmd.Context(), cs)
			if err != nil {
				return err
			}
			printTrust(cmd.OutOrStdout(), entries, time.Now())
			return nil
		},
	}
}

// printTrust writes entries as a table, by key, then namespace and role.
func printTrust(out io.Writer, entries []trustEntry, now time.Time) {
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if ka, kb := identity.ID(a.pub), identity.ID(b.pub); ka != kb {
			return ka < kb
		}
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.role < b.role
	})
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tNAMESPACE\tAGE")
	for _, e := range entries {
		ns := e.namespace
		if ns == "" {
			ns = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", identity.ID(e.pub), e.displayName, e.role, ns, duration.HumanDuration(now.Sub(e.created)))
	}
	tw.Flush()
}

func newTrustRemoveCommand(cf *clientFlags) *cobra.Command {
	var role, namespace string
	cmd := &cobra.Command{
		Use:   "remove KEY|IDENTITY-FILE [--role ROLE] [--namespace NS]",
		Short: "Stop trusting a key: every role it was given, or those --role and --namespace name",
		Example: "  skiff trust remove MCowBQYDK2VwAyEA…\n" +
			"  skiff trust remove ~/ada.identity --role viewer --namespace shop",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseTrustee(args[0])
			if err != nil {
				return err
			}
			cs, _, err := clientset(cf)
			if err != nil {
				return err
			}
			return removeTrust(cmd.Context(), cs, t, role, namespace, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "remove only this role (admin, operator, viewer, mcp, or a ClusterRole's name)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "remove only the key's roles in this namespace")
	return cmd
}

// errNotTrusted is a removal that matches no trust binding.
var errNotTrusted = errors.New("not trusted")

// removeTrust deletes the trust bindings of t, narrowed to role and
// namespace when they are set.
func removeTrust(ctx context.Context, cs kubernetes.Interface, t trustee, role, namespace string, out io.Writer) error {
	entries, err := trustEntries(ctx, cs)
	if err != nil {
		return err
	}
	clusterRole := ""
	if role != "" {
		clusterRole, _ = clusterRoleFor(role)
	}
	matched := selectTrust(entries, t.pub, clusterRole, namespace)
	if len(matched) == 0 {
		return fmt.Errorf("key %s: %w%s (skiff trust list shows what is)", t.user(), errNotTrusted, narrowing(clusterRole, namespace))
	}
	for _, e := range matched {
		if err := deleteTrustBinding(ctx, cs, e); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed the trust of %s as %s %s (%s)\n", t, e.role, scopeText(e.namespace), e.binding)
	}
	return nil
}

// selectTrust picks the entries for pub; of clusterRole and in namespace
// too, when they are set.
func selectTrust(entries []trustEntry, pub ed25519.PublicKey, clusterRole, namespace string) []trustEntry {
	var out []trustEntry
	for _, e := range entries {
		if !e.pub.Equal(pub) || (clusterRole != "" && e.role != clusterRole) || (namespace != "" && e.namespace != namespace) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// narrowing says what --role and --namespace narrowed a removal to.
func narrowing(clusterRole, namespace string) string {
	var s string
	if clusterRole != "" {
		s += " as " + clusterRole
	}
	if namespace != "" {
		s += " in namespace " + namespace
	}
	return s
}

// deleteTrustBinding deletes e's binding, or takes e's key out of it when
// it names other subjects too; one gone already is no error.
func deleteTrustBinding(ctx context.Context, cs kubernetes.Interface, e trustEntry) error {
	var err error
	switch {
	case e.shared:
		err = removeSubject(ctx, cs, e)
	case e.namespace == "":
		err = cs.RbacV1().ClusterRoleBindings().Delete(ctx, e.binding, metav1.DeleteOptions{})
	default:
		err = cs.RbacV1().RoleBindings(e.namespace).Delete(ctx, e.binding, metav1.DeleteOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing trust binding %q: %w", e.binding, err)
	}
	return nil
}

// removeSubject updates e's binding without e's key user, retrying on
// conflicts.
func removeSubject(ctx context.Context, cs kubernetes.Interface, e trustEntry) error {
	user := identity.KeyUserName(e.pub)
	keep := func(subjects []rbacv1.Subject) []rbacv1.Subject {
		var out []rbacv1.Subject
		for _, s := range subjects {
			if s.Kind != rbacv1.UserKind || s.Name != user {
				out = append(out, s)
			}
		}
		return out
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if e.namespace == "" {
			b, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, e.binding, metav1.GetOptions{})
			if err != nil {
				return err
			}
			b.Subjects = keep(b.Subjects)
			_, err = cs.RbacV1().ClusterRoleBindings().Update(ctx, b, metav1.UpdateOptions{})
			return err
		}
		b, err := cs.RbacV1().RoleBindings(e.namespace).Get(ctx, e.binding, metav1.GetOptions{})
		if err != nil {
			return err
		}
		b.Subjects = keep(b.Subjects)
		_, err = cs.RbacV1().RoleBindings(e.namespace).Update(ctx, b, metav1.UpdateOptions{})
		return err
	})
}
