# Offline: every AWS call is mocked.
mock_provider "aws" {
  # Every instance type looks like a g5.xlarge (one NVIDIA A10G, x86_64) unless a run overrides it.
  mock_data "aws_ec2_instance_type" {
    defaults = {
      gpus                    = [{ count = 1, manufacturer = "NVIDIA", name = "A10G", memory_size = 24576 }]
      supported_architectures = ["x86_64"]
    }
  }

  mock_resource "aws_launch_template" {
    defaults = {
      id = "lt-0123456789abcdef0"
    }
  }

  mock_resource "aws_eks_node_group" {
    defaults = {
      resources = [{ autoscaling_groups = [{ name = "eks-gpu-asg" }], remote_access_security_group_id = "" }]
    }
  }
}

variables {
  name          = "trainyard-test"
  cluster_name  = "trainyard-test"
  subnet_ids    = ["subnet-aaaa", "subnet-bbbb"]
  node_role_arn = "arn:aws:iam::123456789012:role/trainyard-test-node"
}

run "every_gpu_node_group_is_tainted_no_schedule" {
  command = plan

  variables {
    instance_types = ["g5.xlarge", "g6e.2xlarge"]
  }

  assert {
    condition     = length(aws_eks_node_group.gpu) == 2
    error_message = "Expected one node group per instance type."
  }

  assert {
    condition = alltrue([for g in aws_eks_node_group.gpu :
      length(g.taint) == 1 && alltrue([for t in g.taint : t.key == "nvidia.com/gpu" && t.value == "present" && t.effect == "NO_SCHEDULE"])
    ])
    error_message = "Every GPU node group must carry the nvidia.com/gpu=present:NoSchedule taint."
  }

  assert {
    condition     = alltrue([for g in aws_eks_node_group.gpu : g.ami_type == "AL2023_x86_64_NVIDIA" && length(g.instance_types) == 1])
    error_message = "GPU node groups must use the NVIDIA AMI and a single instance type each."
  }
}

run "gpu_node_groups_scale_to_zero_by_default" {
  command = plan

  assert {
    condition     = alltrue([for g in aws_eks_node_group.gpu : g.scaling_config[0].min_size == 0 && g.scaling_config[0].desired_size == 0 && g.scaling_config[0].max_size == 4])
    error_message = "GPU node groups must default to min_size 0 (start empty) and max_size 4."
  }

  assert {
    condition     = alltrue([for g in aws_eks_node_group.gpu : g.capacity_type == "ON_DEMAND"])
    error_message = "GPU node groups must default to on-demand capacity."
  }
}

run "node_labels_equal_the_node_selector_output" {
  command = plan

  variables {
    instance_types = ["g5.xlarge", "g6e.2xlarge"]
    node_labels    = { "trainyard.dev/accelerator" = "nvidia", "trainyard.dev/pool" = "training" }
  }

  assert {
    condition     = alltrue([for g in aws_eks_node_group.gpu : g.labels == output.node_selector])
    error_message = "Every GPU node group's labels must equal the node_selector output."
  }

  assert {
    condition     = output.node_selector == tomap({ "trainyard.dev/accelerator" = "nvidia", "trainyard.dev/pool" = "training" })
    error_message = "node_selector must be the configured labels."
  }

  assert {
    condition     = jsonencode(output.tolerations) == jsonencode([{ effect = "NoSchedule", key = "nvidia.com/gpu", operator = "Exists" }])
    error_message = "tolerations must tolerate the GPU taint in the chart's shape."
  }
}

run "device_plugin_values_select_the_gpu_nodes_and_tolerate_the_taint" {
  command = plan

  variables {
    node_labels = { "trainyard.dev/accelerator" = "nvidia", "trainyard.dev/pool" = "training" }
  }

  assert {
    condition     = tomap(yamldecode(output.device_plugin_values).nodeSelector) == output.node_selector
    error_message = "The device plugin must select exactly the GPU node labels."
  }

  assert {
    # Every taint of every node group is tolerated by some toleration of the device plugin.
    condition = alltrue(flatten([for g in aws_eks_node_group.gpu : [for t in g.taint :
      anytrue([for tol in yamldecode(output.device_plugin_values).tolerations :
        tol.key == t.key
        && (tol.operator == "Exists" || try(tol.value, null) == t.value)
        && tol.effect == { NO_SCHEDULE = "NoSchedule", NO_EXECUTE = "NoExecute", PREFER_NO_SCHEDULE = "PreferNoSchedule" }[t.effect]
      ])
    ]]))
    error_message = "The device plugin values must tolerate the GPU taint."
  }

  assert {
    condition     = yamldecode(output.device_plugin_values).affinity == null
    error_message = "The chart's NFD-based default affinity must be removed (affinity: null)."
  }
}

run "autoscaler_node_template_tags_describe_the_gpu_nodes" {
  command = apply

  override_data {
    target = data.aws_ec2_instance_type.gpu["p4d.24xlarge"]
    values = {
      gpus                    = [{ count = 8, manufacturer = "NVIDIA", name = "A100", memory_size = 40960 }]
      supported_architectures = ["x86_64"]
    }
  }

  variables {
    instance_types = ["g5.xlarge", "p4d.24xlarge"]
  }

  assert {
    condition     = aws_autoscaling_group_tag.autoscaler["p4d.24xlarge|k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"].tag[0].value == "8"
    error_message = "The scale-from-zero template must announce the instance type's GPU count."
  }

  assert {
    condition     = aws_autoscaling_group_tag.autoscaler["g5.xlarge|k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"].tag[0].value == "present:NoSchedule"
    error_message = "The scale-from-zero template must announce the GPU taint."
  }

  assert {
    condition     = aws_autoscaling_group_tag.autoscaler["g5.xlarge|k8s.io/cluster-autoscaler/node-template/label/trainyard.dev/accelerator"].tag[0].value == "nvidia"
    error_message = "The scale-from-zero template must announce the node labels."
  }

  assert {
    condition     = alltrue([for t in aws_autoscaling_group_tag.autoscaler : t.autoscaling_group_name == "eks-gpu-asg" && t.tag[0].propagate_at_launch == false])
    error_message = "Autoscaler tags belong on the node group's Auto Scaling group."
  }

  assert {
    condition     = length(output.node_group_names) == 2
    error_message = "node_group_names must list one group per instance type."
  }
}

run "gpu_nodes_require_imdsv2_and_encrypted_volumes" {
  command = plan

  assert {
    condition     = aws_launch_template.gpu.metadata_options[0].http_tokens == "required"
    error_message = "GPU nodes must require IMDSv2."
  }

  assert {
    condition     = aws_launch_template.gpu.block_device_mappings[0].ebs[0].encrypted == "true"
    error_message = "GPU node root volumes must be encrypted."
  }
}

run "instance_type_without_nvidia_gpu_is_refused" {
  command = plan

  override_data {
    target = data.aws_ec2_instance_type.gpu["g4ad.xlarge"]
    values = {
      gpus                    = [{ count = 1, manufacturer = "AMD", name = "Radeon Pro V520", memory_size = 8192 }]
      supported_architectures = ["x86_64"]
    }
  }

  variables {
    instance_types = ["g4ad.xlarge"]
  }

  expect_failures = [data.aws_ec2_instance_type.gpu]
}

run "non_gpu_instance_family_is_refused" {
  command = plan

  variables {
    instance_types = ["m6i.large"]
  }

  expect_failures = [var.instance_types]
}

run "max_size_below_min_size_is_refused" {
  command = plan

  variables {
    min_size = 3
    max_size = 2
  }

  expect_failures = [var.max_size]
}

run "empty_node_labels_are_refused" {
  command = plan

  variables {
    node_labels = {}
  }

  expect_failures = [var.node_labels]
}

run "unknown_capacity_type_is_refused" {
  command = plan

  variables {
    capacity_type = "RESERVED"
  }

  expect_failures = [var.capacity_type]
}

run "capacity_outputs_count_what_the_groups_may_grow_to" {
  command = plan

  variables {
    instance_types = ["g5.xlarge", "g5.12xlarge"]
    max_size       = 3
  }

  override_data {
    target = data.aws_ec2_instance_type.gpu["g5.12xlarge"]
    values = {
      gpus                    = [{ count = 4, manufacturer = "NVIDIA", name = "A10G", memory_size = 24576 }]
      supported_architectures = ["x86_64"]
    }
  }

  assert {
    condition     = output.gpus_per_node == 4
    error_message = "gpus_per_node must be the largest type's GPU count."
  }

  assert {
    condition     = output.max_gpus == 15
    error_message = "max_gpus must be the sum over groups of max_size times the type's GPUs (3*1 + 3*4)."
  }
}
