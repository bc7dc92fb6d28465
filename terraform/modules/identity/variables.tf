variable "name" {
  description = "Prefix of the IAM role names (<name>-api, <name>-worker, <name>-trainer)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "cluster_name" {
  description = "The EKS cluster whose service accounts assume the roles (named in the roles' descriptions and tags)."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be an EKS cluster name (1-100 letters, digits, hyphens, underscores)."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (cluster module's oidc_provider_arn): the federated principal of the trust policies."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/...)."
  }
}

variable "oidc_issuer_url" {
  description = "The cluster's OIDC issuer URL (https://oidc.eks.<region>.amazonaws.com/id/<id>); its host and path prefix the trust conditions' keys."
  type        = string

  validation {
    condition     = can(regex("^https://[^/]+/.+[^/]$", var.oidc_issuer_url))
    error_message = "oidc_issuer_url must be an https:// URL with a path and no trailing slash."
  }
}

variable "bucket_arn" {
  description = "ARN of the platform's bucket (data module's bucket_arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN (arn:aws:s3:::<bucket>)."
  }
}

variable "bucket_kms_key_arn" {
  description = "ARN of the KMS key encrypting the bucket (data module's bucket_kms_key_arn); granted only for use through S3."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.bucket_kms_key_arn))
    error_message = "bucket_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "storage_prefix" {
  description = "Path of TRAINYARD_STORAGE_URL below the bucket (\"\" for s3://<bucket>, \"trainyard\" for s3://<bucket>/trainyard); every prefix the roles get lies below it."
  type        = string
  default     = ""

  validation {
    condition     = var.storage_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.storage_prefix))
    error_message = "storage_prefix must be \"\" or a relative key path without leading or trailing '/' (e.g. \"trainyard\")."
  }
}

variable "registered_dataset_prefixes" {
  description = "Prefixes below the storage root, besides datasets/, where registered s3:// datasets live (e.g. [\"shared-datasets/\"]). The API, worker and trainer may read them; nobody may write them. A job naming an s3:// dataset outside datasets/ and these fails its validation step with AccessDenied."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.registered_dataset_prefixes : can(regex("^[A-Za-z0-9._-]+/([A-Za-z0-9._-]+/)*$", p)) && !startswith(p, "jobs/")])
    error_message = "registered_dataset_prefixes must be relative prefixes ending with '/' (e.g. \"shared-datasets/\"), none below jobs/ (trainers write there)."
  }
}

variable "namespace" {
  description = "Namespace of the Helm release: where the API's and the worker's service accounts live."
  type        = string
  default     = "trainyard"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a Kubernetes namespace name (RFC 1123 label)."
  }
}

variable "training_namespaces" {
  description = "Namespaces trainer Jobs run in (the chart's training.namespace and projectNamespaces): the trainer role trusts its service account in each of them, and nowhere else."
  type        = list(string)
  default     = ["trainyard-training"]

  validation {
    condition     = length(var.training_namespaces) >= 1 && alltrue([for ns in var.training_namespaces : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", ns))])
    error_message = "training_namespaces needs at least one namespace, each a Kubernetes namespace name (RFC 1123 label)."
  }
}

variable "service_accounts" {
  description = "Service account names of the API, the worker and trainer pods. Defaults are the chart's for release \"trainyard\": <fullname>-backend, <fullname>-worker, <fullname>-trainer."
  type = object({
    api     = string
    worker  = string
    trainer = string
  })
  default = {
    api     = "trainyard-backend"
    worker  = "trainyard-worker"
    trainer = "trainyard-trainer"
  }

  validation {
    condition     = alltrue([for sa in values(var.service_accounts) : can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", sa))])
    error_message = "service_accounts names must be Kubernetes object names (lowercase letters, digits, '-' and '.')."
  }
}

variable "max_session_duration" {
  description = "Longest session (seconds) of a role; the SDKs refresh web-identity credentials on their own, so the default hour suits even long trainings."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be between 3600 and 43200 seconds."
  }
}
