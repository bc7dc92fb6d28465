output "node_selector" {
  description = "Node selector that matches exactly the GPU nodes (their labels): for training pods and the device plugin."
  value       = var.node_labels
}

output "tolerations" {
  description = "Tolerations for the GPU taint, in the chart's toleration shape."
  value       = local.tolerations
}

output "node_group_names" {
  description = "Names of the GPU managed node groups, one per instance type."
  value       = [for type in var.instance_types : aws_eks_node_group.gpu[type].node_group_name]
}

output "device_plugin_values" {
  description = "YAML values for NVIDIA's k8s-device-plugin Helm chart: runs the plugin on exactly the GPU nodes."
  value = yamlencode({
    nodeSelector = var.node_labels
    tolerations  = local.tolerations
    # The chart's default affinity needs Node Feature Discovery labels, which these nodes
    # lack; null removes it so that the node selector alone decides.
    affinity = null
  })
}

output "gpus_per_node" {
  description = "The most GPUs one GPU node has (the largest instance type's): the biggest job that can ever be scheduled."
  value       = max(values(local.gpus_per_node)...)
}

output "max_gpus" {
  description = "GPUs the node groups may grow to (each group's max_size times its type's GPUs): what the platform may admit while the groups are scaled to zero."
  value       = local.max_gpus
}
