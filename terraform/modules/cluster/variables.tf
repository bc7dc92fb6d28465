variable "name" {
  description = "Cluster name, also the prefix of every resource (lowercase letters, digits and hyphens, 3-32 characters)."
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

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane, e.g. \"1.33\"."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as \"1.33\"."
  }
}

variable "vpc_id" {
  description = "VPC the subnets belong to (checked against the cluster's VPC after creation)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC ID (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets (at least two, in different availability zones) for the control-plane ENIs and the system node group."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnet_ids in at least two availability zones."
  }
}

variable "endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint on the internet (restricted to public_access_cidrs). Default: private only, reachable from the VPC."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint; required (non-empty, no 0.0.0.0/0) when endpoint_public_access is true."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs must be valid IPv4 CIDRs and must not contain 0.0.0.0/0: list the ranges that need the API."
  }

  validation {
    condition     = !var.endpoint_public_access || length(var.public_access_cidrs) > 0
    error_message = "endpoint_public_access = true needs public_access_cidrs: an open public endpoint is not allowed."
  }
}

variable "admin_principal_arns" {
  description = "IAM role/user ARNs granted cluster-admin through EKS access entries (AmazonEKSClusterAdminPolicy). The cluster creator gets no implicit access."
  type        = list(string)

  validation {
    condition     = length(var.admin_principal_arns) > 0
    error_message = "admin_principal_arns must name at least one principal: the creator gets no implicit admin, so an empty list locks everyone out."
  }

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "admin_principal_arns must be IAM role or user ARNs (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "system_node_instance_types" {
  description = "Instance types of the system node group (platform services, CoreDNS, controllers)."
  type        = list(string)
  default     = ["m6i.large"]

  validation {
    condition     = length(var.system_node_instance_types) > 0
    error_message = "system_node_instance_types must list at least one instance type."
  }
}

variable "system_node_min_size" {
  description = "Minimum number of system nodes (at least 1: the platform and CoreDNS run there)."
  type        = number
  default     = 2

  validation {
    condition     = var.system_node_min_size >= 1
    error_message = "system_node_min_size must be at least 1."
  }
}

variable "system_node_max_size" {
  description = "Maximum number of system nodes."
  type        = number
  default     = 4

  validation {
    condition     = var.system_node_max_size >= var.system_node_min_size
    error_message = "system_node_max_size must be at least system_node_min_size."
  }
}

variable "system_node_desired_size" {
  description = "Initial number of system nodes (later changes by the autoscaler are ignored)."
  type        = number
  default     = 2

  validation {
    condition     = var.system_node_desired_size >= var.system_node_min_size && var.system_node_desired_size <= var.system_node_max_size
    error_message = "system_node_desired_size must lie between system_node_min_size and system_node_max_size."
  }
}

variable "system_node_disk_size" {
  description = "Root volume size of system nodes in GiB (gp3, encrypted)."
  type        = number
  default     = 50

  validation {
    condition     = var.system_node_disk_size >= 20 && var.system_node_disk_size <= 16384
    error_message = "system_node_disk_size must be between 20 and 16384 GiB."
  }
}

variable "cluster_log_retention_days" {
  description = "Retention of the control-plane log group in days (a CloudWatch Logs retention value, at least 365)."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.cluster_log_retention_days)
    error_message = "cluster_log_retention_days must be a CloudWatch Logs retention value of at least one year (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "oidc_thumbprints" {
  description = "SHA-1 thumbprints for the IAM OIDC provider. IAM trusts its own CA library for EKS issuers, but the API still stores one; the default is the well-known root CA thumbprint of EKS OIDC endpoints (no tls provider is available to compute it)."
  type        = list(string)
  default     = ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]

  validation {
    condition     = length(var.oidc_thumbprints) > 0 && alltrue([for t in var.oidc_thumbprints : can(regex("^[0-9a-f]{40}$", t))])
    error_message = "oidc_thumbprints must hold 40-character lowercase hex SHA-1 thumbprints."
  }
}
