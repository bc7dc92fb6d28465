locals {
  gpu_taint = {
    key    = "nvidia.com/gpu"
    value  = "present"
    effect = "NO_SCHEDULE"
  }

  # The chart's toleration shape (values.schema.json): tolerates the taint whatever its value.
  tolerations = [{
    key      = local.gpu_taint.key
    operator = "Exists"
    effect   = "NoSchedule"
  }]

  # Tags the cluster autoscaler reads from the Auto Scaling group to build a node template
  # when a group has no node to look at (scale from zero): without them it cannot tell
  # that a new node would carry nvidia.com/gpu, these labels and the taint.
  autoscaler_tags = {
    for type in var.instance_types : type => merge(
      {
        "k8s.io/cluster-autoscaler/enabled"                                    = "true"
        "k8s.io/cluster-autoscaler/${var.cluster_name}"                        = "owned"
        "k8s.io/cluster-autoscaler/node-template/taint/${local.gpu_taint.key}" = "${local.gpu_taint.value}:NoSchedule"
        "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"     = tostring(local.gpus_per_node[type])
        "k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage"  = "${var.disk_size}Gi"
      },
      { for k, v in var.node_labels : "k8s.io/cluster-autoscaler/node-template/label/${k}" => v },
    )
  }

  # GPUs of one node of each type, and what the groups may grow to: the platform admits GPU
  # jobs against these while the groups are scaled to zero (no node to discover).
  gpus_per_node = { for type in var.instance_types : type => sum([for g in data.aws_ec2_instance_type.gpu[type].gpus : g.count]) }
  max_gpus      = sum([for type in var.instance_types : local.gpus_per_node[type] * var.max_size])

  autoscaler_asg_tags = merge([
    for type, tags in local.autoscaler_tags : {
      for k, v in tags : "${type}|${k}" => { type = type, key = k, value = v }
    }
  ]...)
}

# Fails the plan for a type without NVIDIA GPUs (g4ad is AMD) or not x86_64 (g5g is Arm),
# which AL2023_x86_64_NVIDIA cannot boot.
data "aws_ec2_instance_type" "gpu" {
  for_each = toset(var.instance_types)

  instance_type = each.value

  lifecycle {
    postcondition {
      condition     = length(self.gpus) > 0 && alltrue([for g in self.gpus : g.manufacturer == "NVIDIA"])
      error_message = "${each.value} has no NVIDIA GPU."
    }

    postcondition {
      condition     = contains(self.supported_architectures, "x86_64")
      error_message = "${each.value} is not x86_64; the AL2023_x86_64_NVIDIA AMI cannot run on it."
    }
  }
}

resource "aws_launch_template" "gpu" {
  name_prefix = "${var.name}-gpu-"
  description = "GPU nodes of ${var.cluster_name}: IMDSv2 only, encrypted gp3 root volume."

  # No vpc_security_group_ids: EKS attaches the cluster security group, as on system nodes.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1 # pods use IRSA, not the node role
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.disk_size
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-gpu" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-gpu" })
  }

  tags = var.tags
}

resource "aws_eks_node_group" "gpu" {
  for_each = toset(var.instance_types)

  cluster_name           = var.cluster_name
  node_group_name_prefix = "${var.name}-gpu-${replace(each.value, ".", "-")}-"
  node_role_arn          = var.node_role_arn
  subnet_ids             = var.subnet_ids
  ami_type               = "AL2023_x86_64_NVIDIA" # driver and container toolkit preinstalled
  capacity_type          = var.capacity_type
  instance_types         = [each.value]

  launch_template {
    id      = aws_launch_template.gpu.id
    version = aws_launch_template.gpu.latest_version
  }

  scaling_config {
    min_size     = var.min_size
    max_size     = var.max_size
    desired_size = var.min_size
  }

  update_config {
    max_unavailable = 1
  }

  labels = var.node_labels

  # Only pods that tolerate it (training jobs, the device plugin) land on GPU nodes.
  taint {
    key    = local.gpu_taint.key
    value  = local.gpu_taint.value
    effect = local.gpu_taint.effect
  }

  tags = merge(var.tags, local.autoscaler_tags[each.value])

  lifecycle {
    create_before_destroy = true
    # The cluster autoscaler owns the node count after creation.
    ignore_changes = [scaling_config[0].desired_size]
  }
}

# Node group tags do not reach the Auto Scaling group EKS creates, where the autoscaler
# reads them: copy them there.
resource "aws_autoscaling_group_tag" "autoscaler" {
  for_each = local.autoscaler_asg_tags

  autoscaling_group_name = aws_eks_node_group.gpu[each.value.type].resources[0].autoscaling_groups[0].name

  tag {
    key                 = each.value.key
    value               = each.value.value
    propagate_at_launch = false
  }
}
