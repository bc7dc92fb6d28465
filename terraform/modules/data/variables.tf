variable "name" {
  description = "Prefix of every resource name (identifiers of the database, the Redis group, the keys' aliases)."
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

variable "vpc_id" {
  description = "The VPC the database and Redis live in (network module's vpc_id)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "subnet_ids" {
  description = "Private subnets (at least two, in different AZs) for the database and Redis subnet groups."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids needs at least two subnets: RDS and ElastiCache subnet groups span two AZs."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect to PostgreSQL (5432) and Redis (6379): the cluster's (node) security group. Nothing else is admitted."
  type        = list(string)

  validation {
    condition     = length(var.client_security_group_ids) >= 1 && alltrue([for id in var.client_security_group_ids : can(regex("^sg-[0-9a-f]+$", id))])
    error_message = "client_security_group_ids needs at least one security group id (sg-...)."
  }
}

# --- PostgreSQL -------------------------------------------------------------------------------

variable "database_instance_class" {
  description = "RDS instance class of the PostgreSQL database."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = startswith(var.database_instance_class, "db.")
    error_message = "database_instance_class must be an RDS instance class (db.*)."
  }
}

variable "database_engine_version" {
  description = "PostgreSQL version: a major (\"16\": RDS picks the default minor and auto minor upgrades follow it) or a full version (\"16.4\")."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^1[3-9](\\.[0-9]+)?$", var.database_engine_version))
    error_message = "database_engine_version must be a PostgreSQL major version 13-19, optionally with a minor (\"16\", \"16.4\")."
  }
}

variable "database_allocated_storage" {
  description = "Initial storage of the database in GiB (gp3); storage autoscaling may grow it up to database_max_allocated_storage."
  type        = number
  default     = 50

  validation {
    condition     = var.database_allocated_storage >= 20 && var.database_allocated_storage <= 65536
    error_message = "database_allocated_storage must be between 20 and 65536 GiB."
  }
}

variable "database_max_allocated_storage" {
  description = "Upper bound of storage autoscaling in GiB (0 turns autoscaling off)."
  type        = number
  default     = 200

  validation {
    condition     = var.database_max_allocated_storage == 0 || var.database_max_allocated_storage >= var.database_allocated_storage
    error_message = "database_max_allocated_storage must be 0 (off) or at least database_allocated_storage."
  }
}

variable "database_name" {
  description = "Name of the database the platform uses."
  type        = string
  default     = "trainyard"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must start with a letter and hold only lowercase letters, digits and underscores (at most 63)."
  }
}

variable "database_username" {
  description = "Master user of the database (its password is generated and kept by RDS in Secrets Manager)."
  type        = string
  default     = "trainyard"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_username)) && !contains(["admin", "postgres", "rdsadmin"], var.database_username)
    error_message = "database_username must start with a letter, hold only lowercase letters, digits and underscores, and not be a reserved name (admin, postgres, rdsadmin)."
  }
}

variable "iam_database_authentication" {
  description = "Also admit IAM database authentication (rds-db:connect). Password authentication keeps working: the platform uses the managed master password."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days RDS keeps automated backups (point-in-time recovery window) and ElastiCache keeps daily snapshots."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number from 1 to 35 (0 would turn RDS backups off)."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the database (RDS deletion protection). Set false only to tear down a non-production environment."
  type        = bool
  default     = true
}

variable "skip_final_snapshot" {
  description = "Delete the database without a final snapshot. Keep false for production; a final snapshot named <name>-final is taken otherwise."
  type        = bool
  default     = false
}

variable "multi_az" {
  description = "A standby database in a second AZ, and a Redis replica with automatic failover."
  type        = bool
  default     = true
}

variable "performance_insights_retention_days" {
  description = "Days Performance Insights keeps its data: 7 (free tier) or a multiple of 31 up to 731."
  type        = number
  default     = 7

  validation {
    condition     = var.performance_insights_retention_days == 7 || var.performance_insights_retention_days == 731 || (var.performance_insights_retention_days % 31 == 0 && var.performance_insights_retention_days >= 31 && var.performance_insights_retention_days <= 713)
    error_message = "performance_insights_retention_days must be 7, 731, or a multiple of 31 between 31 and 713."
  }
}

variable "monitoring_interval" {
  description = "Seconds between Enhanced Monitoring samples of the database host (0 turns it off)."
  type        = number
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.monitoring_interval)
    error_message = "monitoring_interval must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "log_retention_days" {
  description = "Days the CloudWatch log groups of the database and Redis keep their logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

# --- Redis ------------------------------------------------------------------------------------

variable "redis_node_type" {
  description = "ElastiCache node type of the Redis replication group."
  type        = string
  default     = "cache.t4g.small"

  validation {
    condition     = startswith(var.redis_node_type, "cache.")
    error_message = "redis_node_type must be an ElastiCache node type (cache.*)."
  }
}

variable "redis_engine_version" {
  description = "Redis OSS engine version of the replication group."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.redis_engine_version))
    error_message = "redis_engine_version must be a Redis OSS 7 version (\"7.1\"): the module uses the default.redis7 parameter group."
  }
}

# --- Object storage ---------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the platform's bucket (TRAINYARD_STORAGE_URL = s3://<bucket_name>). The access-log bucket is <bucket_name>-logs."
  type        = string

  validation {
    # 58 leaves room for the "-logs" suffix of the access-log bucket within S3's 63.
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,56}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.|^\\d+\\.\\d+\\.\\d+\\.\\d+$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name of 3-58 characters (lowercase letters, digits, dots, hyphens)."
  }
}

variable "checkpoint_prefix" {
  description = "Prefix of the attempts' outputs in the bucket (checkpoints, weights, results: jobs/<job>/attempt-<n>/), which checkpoint_expiration_days expires. Must match the storage root's layout."
  type        = string
  default     = "jobs/"

  validation {
    condition     = can(regex("^([a-z0-9._-]+/)+$", var.checkpoint_prefix))
    error_message = "checkpoint_prefix must be a relative key prefix ending with '/' (e.g. \"jobs/\")."
  }
}

variable "checkpoint_expiration_days" {
  description = "Days after which objects under checkpoint_prefix expire; null (the default) keeps them. The prefix holds each job's final weights as well as its checkpoints (an attempt's weights are its checkpoints), and the API serves them for download: set it only where MLflow's copy of the artifacts is the one kept."
  type        = number
  default     = null

  validation {
    condition     = var.checkpoint_expiration_days == null || try(var.checkpoint_expiration_days >= 1 && floor(var.checkpoint_expiration_days) == var.checkpoint_expiration_days, false)
    error_message = "checkpoint_expiration_days must be null or a whole number of days, at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object version is kept (the undo window of versioning) before it is removed."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "access_log_retention_days" {
  description = "Days the bucket's S3 server access logs are kept in <bucket_name>-logs."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 1 && floor(var.access_log_retention_days) == var.access_log_retention_days
    error_message = "access_log_retention_days must be a whole number of days, at least 1."
  }
}
