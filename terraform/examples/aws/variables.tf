variable "region" {
  description = "AWS region of every resource, and of the platform's S3 client (storage.s3.region)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name" {
  description = "Prefix of every resource name (lowercase letters, digits and hyphens, 3-32 characters)."
  type        = string
  default     = "trainyard"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "tags" {
  description = "Tags added to every resource (the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "admin_principal_arns" {
  description = "IAM role or user ARNs given cluster-admin (EKS access entries). The identity running terraform apply gets no implicit access: include yours."
  type        = list(string)

  validation {
    condition     = length(var.admin_principal_arns) > 0
    error_message = "admin_principal_arns must name at least one principal, or nobody can reach the cluster."
  }
}

variable "endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (to public_access_cidrs only). false: reach it from inside the VPC (VPN, bastion)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs admitted to the public Kubernetes API endpoint when endpoint_public_access is true."
  type        = list(string)
  default     = []
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all availability zones (cheaper; egress fails with its zone)."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Protect the database from deletion (terraform destroy fails until this is false and applied)."
  type        = bool
  default     = true
}

variable "multi_az" {
  description = "A standby database and a Redis replica in another availability zone."
  type        = bool
  default     = true
}

variable "bucket_name" {
  description = "The platform's S3 bucket; null means <name>-data-<account id>, unique per account."
  type        = string
  default     = null
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group trainer Jobs run on."
  type        = list(string)
  default     = ["g5.xlarge"]
}

variable "gpu_max_size" {
  description = "Most GPU nodes at once (the group scales from zero)."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_max_size >= 1 && floor(var.gpu_max_size) == var.gpu_max_size
    error_message = "gpu_max_size must be a whole number of at least 1."
  }
}

variable "gpu_capacity_type" {
  description = "ON_DEMAND or SPOT GPU nodes (a spot reclaim fails the trainer Job running there)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_capacity_type)
    error_message = "gpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "namespace" {
  description = "Namespace of the Helm release (helm install -n): the IRSA roles trust its ServiceAccounts only."
  type        = string
  default     = "trainyard"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a Kubernetes namespace name."
  }
}

variable "training_namespace" {
  description = "Namespace trainer Jobs run in (the chart's training.namespace): the trainer role trusts its ServiceAccount only."
  type        = string
  default     = "trainyard-training"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.training_namespace)) && var.training_namespace != var.namespace
    error_message = "training_namespace must be a Kubernetes namespace name other than namespace (the chart refuses trainers beside the platform's Secrets)."
  }
}

variable "domain" {
  description = "Host name users open the platform at (the chart's ingress.host); point its DNS at the ingress controller's load balancer."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", var.domain))
    error_message = "domain must be a lowercase DNS name such as trainyard.example.com."
  }
}

variable "ingress_class_name" {
  description = "IngressClass of the cluster's ingress controller."
  type        = string
  default     = "nginx"
}

variable "ingress_tls_secret_name" {
  description = "An existing kubernetes.io/tls Secret for the domain; or \"\" with ingress_cluster_issuer."
  type        = string
  default     = ""
}

variable "ingress_cluster_issuer" {
  description = "A cert-manager ClusterIssuer that issues the domain's certificate; or \"\" with ingress_tls_secret_name."
  type        = string
  default     = ""

  validation {
    condition     = var.ingress_cluster_issuer != "" || var.ingress_tls_secret_name != ""
    error_message = "Set ingress_cluster_issuer or ingress_tls_secret_name: the chart serves the platform over TLS only."
  }
}

variable "oidc_issuer" {
  description = "Issuer URL of the OpenID Connect IdP users sign in with (the chart's oidc.issuer)."
  type        = string

  validation {
    condition     = can(regex("^https://[^\\s]+$", var.oidc_issuer))
    error_message = "oidc_issuer must be an https:// URL."
  }
}

variable "oidc_audience" {
  description = "The aud every token must carry (the chart's oidc.audience; the API's client id at most IdPs)."
  type        = string

  validation {
    condition     = length(var.oidc_audience) > 0
    error_message = "oidc_audience must not be empty."
  }
}
