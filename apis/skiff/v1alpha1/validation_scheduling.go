package v1alpha1

import (
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds of a preferred term's weight, added to a Node's score when it holds.
const (
	minAffinityWeight = 1
	maxAffinityWeight = 100
)

// validatePlacement checks the rules the scheduler evaluates: node
// selector, affinity, tolerations and topology spread. A rule the
// scheduler cannot parse would otherwise leave the Instance pending forever.
func validatePlacement(spec *InstanceTemplateSpec, fldPath *field.Path) field.ErrorList {
	allErrs := metav1validation.ValidateLabels(spec.NodeSelector, fldPath.Child("nodeSelector"))
	allErrs = append(allErrs, validateAffinity(spec.Affinity, fldPath.Child("affinity"))...)
	allErrs = append(allErrs, validateTolerations(spec.Tolerations, fldPath.Child("tolerations"))...)
	return append(allErrs, validateTopologySpreadConstraints(spec.TopologySpreadConstraints, fldPath.Child("topologySpreadConstraints"))...)
}

func validateAffinity(a *Affinity, fldPath *field.Path) field.ErrorList {
	if a == nil {
		return nil
	}
	allErrs := validateNodeAffinity(a.NodeAffinity, fldPath.Child("nodeAffinity"))
	allErrs = append(allErrs, validateInstanceAffinity(a.InstanceAffinity, fldPath.Child("instanceAffinity"))...)
	return append(allErrs, validateInstanceAffinity(a.InstanceAntiAffinity, fldPath.Child("instanceAntiAffinity"))...)
}

func validateNodeAffinity(na *NodeAffinity, fldPath *field.Path) field.ErrorList {
	if na == nil {
		return nil
	}
	var allErrs field.ErrorList
	if na.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		allErrs = append(allErrs, validateNodeSelector(na.RequiredDuringSchedulingIgnoredDuringExecution, fldPath.Child("requiredDuringSchedulingIgnoredDuringExecution"))...)
	}
	preferredPath := fldPath.Child("preferredDuringSchedulingIgnoredDuringExecution")
	for i, term := range na.PreferredDuringSchedulingIgnoredDuringExecution {
		idxPath := preferredPath.Index(i)
		allErrs = append(allErrs, validateWeight(term.Weight, idxPath.Child("weight"))...)
		allErrs = append(allErrs, validateNodeSelectorTerm(&term.Preference, idxPath.Child("preference"))...)
	}
	return allErrs
}

// validateNodeSelector requires at least one term, and at least one
// expression per term: the terms are ORed, and an empty term would make the
// required rule match no Node at all.
func validateNodeSelector(ns *NodeSelector, fldPath *field.Path) field.ErrorList {
	termsPath := fldPath.Child("nodeSelectorTerms")
	if len(ns.NodeSelectorTerms) == 0 {
		return field.ErrorList{field.Required(termsPath, "must have at least one node selector term")}
	}
	var allErrs field.ErrorList
	for i := range ns.NodeSelectorTerms {
		term, idxPath := &ns.NodeSelectorTerms[i], termsPath.Index(i)
		if len(term.MatchExpressions) == 0 {
			allErrs = append(allErrs, field.Required(idxPath.Child("matchExpressions"), "a node selector term must have at least one match expression"))
		}
		allErrs = append(allErrs, validateNodeSelectorTerm(term, idxPath)...)
	}
	return allErrs
}

func validateNodeSelectorTerm(term *NodeSelectorTerm, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i := range term.MatchExpressions {
		allErrs = append(allErrs, validateNodeSelectorRequirement(&term.MatchExpressions[i], fldPath.Child("matchExpressions").Index(i))...)
	}
	return allErrs
}

func validateNodeSelectorRequirement(req *NodeSelectorRequirement, fldPath *field.Path) field.ErrorList {
	allErrs := metav1validation.ValidateLabelName(req.Key, fldPath.Child("key"))
	valuesPath := fldPath.Child("values")
	switch req.Operator {
	case NodeSelectorOpIn, NodeSelectorOpNotIn:
		if len(req.Values) == 0 {
			allErrs = append(allErrs, field.Required(valuesPath, "must be specified when `operator` is 'In' or 'NotIn'"))
		}
		allErrs = append(allErrs, validateLabelValues(req.Values, valuesPath)...)
	case NodeSelectorOpExists, NodeSelectorOpDoesNotExist:
		if len(req.Values) > 0 {
			allErrs = append(allErrs, field.Forbidden(valuesPath, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
		}
	case NodeSelectorOpGt, NodeSelectorOpLt:
		allErrs = append(allErrs, validateIntegerValue(req.Values, valuesPath)...)
	default:
		ops := []NodeSelectorOperator{NodeSelectorOpIn, NodeSelectorOpNotIn, NodeSelectorOpExists, NodeSelectorOpDoesNotExist, NodeSelectorOpGt, NodeSelectorOpLt}
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("operator"), req.Operator, ops))
	}
	return allErrs
}

func validateLabelValues(values []string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, v := range values {
		for _, msg := range validation.IsValidLabelValue(v) {
			allErrs = append(allErrs, field.Invalid(fldPath.Index(i), v, msg))
		}
	}
	return allErrs
}

// validateIntegerValue requires the single integer that Gt and Lt compare
// a Node's label value with.
func validateIntegerValue(values []string, fldPath *field.Path) field.ErrorList {
	if len(values) != 1 {
		return field.ErrorList{field.Required(fldPath, "must be specified single value when `operator` is 'Lt' or 'Gt'")}
	}
	if _, err := strconv.ParseInt(values[0], 10, 64); err != nil {
		return field.ErrorList{field.Invalid(fldPath.Index(0), values[0], "must be an integer when `operator` is 'Lt' or 'Gt'")}
	}
	return nil
}

func validateWeight(w int32, fldPath *field.Path) field.ErrorList {
	if w < minAffinityWeight || w > maxAffinityWeight {
		return field.ErrorList{field.Invalid(fldPath, w, validation.InclusiveRangeError(minAffinityWeight, maxAffinityWeight))}
	}
	return nil
}

func validateInstanceAffinity(ia *InstanceAffinity, fldPath *field.Path) field.ErrorList {
	if ia == nil {
		return nil
	}
	var allErrs field.ErrorList
	requiredPath := fldPath.Child("requiredDuringSchedulingIgnoredDuringExecution")
	for i := range ia.RequiredDuringSchedulingIgnoredDuringExecution {
		allErrs = append(allErrs, validateInstanceAffinityTerm(&ia.RequiredDuringSchedulingIgnoredDuringExecution[i], requiredPath.Index(i))...)
	}
	preferredPath := fldPath.Child("preferredDuringSchedulingIgnoredDuringExecution")
	for i := range ia.PreferredDuringSchedulingIgnoredDuringExecution {
		term, idxPath := &ia.PreferredDuringSchedulingIgnoredDuringExecution[i], preferredPath.Index(i)
		allErrs = append(allErrs, validateWeight(term.Weight, idxPath.Child("weight"))...)
		allErrs = append(allErrs, validateInstanceAffinityTerm(&term.InstanceAffinityTerm, idxPath.Child("instanceAffinityTerm"))...)
	}
	return allErrs
}

// validateInstanceAffinityTerm requires a selector (which Instances the
// term is about) and a topology key (what "near" means).
func validateInstanceAffinityTerm(term *InstanceAffinityTerm, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if term.LabelSelector == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("labelSelector"), "a label selector is required: it selects the Instances the term refers to"))
	} else {
		allErrs = append(allErrs, validateLabelSelector(term.LabelSelector, fldPath.Child("labelSelector"))...)
	}
	return append(allErrs, validateTopologyKey(term.TopologyKey, fldPath.Child("topologyKey"))...)
}

func validateTopologyKey(key string, fldPath *field.Path) field.ErrorList {
	if key == "" {
		return field.ErrorList{field.Required(fldPath, "a topology key is required: the Node label whose values define the domains")}
	}
	return metav1validation.ValidateLabelName(key, fldPath)
}

func validateLabelSelector(sel *metav1.LabelSelector, fldPath *field.Path) field.ErrorList {
	return metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, fldPath)
}

func validateTolerations(tolerations []Toleration, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i := range tolerations {
		allErrs = append(allErrs, validateToleration(&tolerations[i], fldPath.Index(i))...)
	}
	return allErrs
}

// validateToleration follows the Kubernetes rules: an empty key tolerates
// every taint and so only makes sense with Exists; Exists ignores the value,
// so a value there would be a silent mistake.
func validateToleration(t *Toleration, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	operatorPath, valuePath := fldPath.Child("operator"), fldPath.Child("value")
	if t.Key != "" {
		allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, fldPath.Child("key"))...)
	} else if t.Operator == TolerationOpEqual || t.Operator == "" {
		allErrs = append(allErrs, field.Invalid(operatorPath, t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
	}
	switch t.Operator {
	case TolerationOpEqual, "":
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			allErrs = append(allErrs, field.Invalid(valuePath, t.Value, msg))
		}
	case TolerationOpExists:
		if t.Value != "" {
			allErrs = append(allErrs, field.Invalid(valuePath, t.Value, "value must be empty when `operator` is 'Exists'"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(operatorPath, t.Operator, []TolerationOperator{TolerationOpEqual, TolerationOpExists}))
	}
	if t.Effect != "" {
		allErrs = append(allErrs, validateTaintEffect(t.Effect, fldPath.Child("effect"))...)
	}
	if t.TolerationSeconds != nil {
		if t.Effect != TaintEffectNoExecute {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		if *t.TolerationSeconds < 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("tolerationSeconds"), *t.TolerationSeconds, "must be greater than or equal to 0"))
		}
	}
	return allErrs
}

// validateTopologySpreadConstraints checks each constraint, and that no two
// share a topology key and action: they would count the same domains twice.
func validateTopologySpreadConstraints(constraints []TopologySpreadConstraint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	type key struct {
		topologyKey string
		action      UnsatisfiableConstraintAction
	}
	var seen []key
	for i := range constraints {
		c, idxPath := &constraints[i], fldPath.Index(i)
		allErrs = append(allErrs, validateTopologySpreadConstraint(c, idxPath)...)
		k := key{c.TopologyKey, c.WhenUnsatisfiable}
		if slices.Contains(seen, k) {
			allErrs = append(allErrs, field.Duplicate(idxPath, c.TopologyKey+"/"+string(c.WhenUnsatisfiable)))
		}
		seen = append(seen, k)
	}
	return allErrs
}

func validateTopologySpreadConstraint(c *TopologySpreadConstraint, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if c.MaxSkew < 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("maxSkew"), c.MaxSkew, "must be greater than 0"))
	}
	allErrs = append(allErrs, validateTopologyKey(c.TopologyKey, fldPath.Child("topologyKey"))...)
	actionPath := fldPath.Child("whenUnsatisfiable")
	switch c.WhenUnsatisfiable {
	case DoNotSchedule, ScheduleAnyway:
	case "":
		allErrs = append(allErrs, field.Required(actionPath, "must be DoNotSchedule or ScheduleAnyway"))
	default:
		allErrs = append(allErrs, field.NotSupported(actionPath, c.WhenUnsatisfiable, []UnsatisfiableConstraintAction{DoNotSchedule, ScheduleAnyway}))
	}
	return append(allErrs, validateLabelSelector(c.LabelSelector, fldPath.Child("labelSelector"))...)
}
