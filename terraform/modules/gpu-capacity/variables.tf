variable "name" {
  description = "Name prefix for every resource (lowercase letters, digits and hyphens, 3-32 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "cluster_name" {
  description = "Name of the EKS cluster the GPU node groups join."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be a valid EKS cluster name."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the GPU nodes (GPU types are not offered in every AZ: list all private subnets)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet."
  }
}

variable "node_role_arn" {
  description = "IAM role of the nodes (the cluster module's node_role_arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.node_role_arn))
    error_message = "node_role_arn must be an IAM role ARN."
  }
}

variable "instance_types" {
  description = "NVIDIA GPU x86_64 instance types. Each gets its own node group, so that the cluster autoscaler's scale-from-zero template (GPU count, memory) describes every node of the group exactly."
  type        = list(string)
  default     = ["g5.xlarge"]

  validation {
    condition     = length(var.instance_types) > 0 && length(distinct(var.instance_types)) == length(var.instance_types)
    error_message = "instance_types must list at least one instance type, without repeats."
  }

  validation {
    # A cheap static check; the instance-type lookup checks for NVIDIA GPUs and x86_64.
    condition     = alltrue([for t in var.instance_types : can(regex("^[gp][0-9][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "instance_types must be GPU instance types from the g or p families (e.g. g5.xlarge, g6e.2xlarge, p5.48xlarge)."
  }
}

variable "min_size" {
  description = "Minimum nodes per GPU node group. 0 (default) lets idle GPU capacity scale to zero."
  type        = number
  default     = 0

  validation {
    condition     = var.min_size >= 0 && floor(var.min_size) == var.min_size
    error_message = "min_size must be a whole number, 0 or more."
  }
}

variable "max_size" {
  description = "Maximum nodes per GPU node group (a cost ceiling per instance type)."
  type        = number
  default     = 4

  validation {
    condition     = var.max_size >= 1 && var.max_size >= var.min_size && floor(var.max_size) == var.max_size
    error_message = "max_size must be a whole number, at least 1 and at least min_size."
  }
}

variable "capacity_type" {
  description = "ON_DEMAND or SPOT. Spot GPUs are cheaper but can be reclaimed mid-training: use only with checkpointing jobs."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.capacity_type)
    error_message = "capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "node_labels" {
  description = "Kubernetes labels of the GPU nodes; also the node_selector output for training pods and the device plugin."
  type        = map(string)
  default     = { "trainyard.dev/accelerator" = "nvidia" }

  validation {
    condition     = length(var.node_labels) > 0
    error_message = "node_labels must hold at least one label: an empty node selector would match every node."
  }

  validation {
    condition = alltrue([for k, v in var.node_labels :
      can(regex("^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", k))
      && can(regex("^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$", v))
    ])
    error_message = "node_labels must be valid Kubernetes label keys and values (names and values at most 63 characters)."
  }

  validation {
    condition     = alltrue([for k in keys(var.node_labels) : !can(regex("(^|\\.)(kubernetes|k8s)\\.io/", k))])
    error_message = "node_labels must not use the kubernetes.io/ or k8s.io/ prefixes (reserved for the kubelet and EKS)."
  }
}

variable "disk_size" {
  description = "Root volume size of GPU nodes in GiB (gp3, encrypted): CUDA images are large."
  type        = number
  default     = 200

  validation {
    condition     = var.disk_size >= 50 && var.disk_size <= 16384
    error_message = "disk_size must be between 50 and 16384 GiB."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key for the root volumes; null uses the account's default EBS key."
  type        = string
  default     = null

  validation {
    condition     = var.ebs_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.ebs_kms_key_arn))
    error_message = "ebs_kms_key_arn must be a KMS key ARN or null."
  }
}
