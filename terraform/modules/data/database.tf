# PostgreSQL on RDS: private, encrypted, backed up, its master password kept by RDS itself in
# Secrets Manager (manage_master_user_password), so no password is ever in Terraform's state.

locals {
  database_identifier = var.name
  database_family     = "postgres${split(".", var.database_engine_version)[0]}"
  database_log_types  = ["postgresql", "upgrade"]
}

resource "aws_db_subnet_group" "this" {
  name        = "${var.name}-database"
  description = "Private subnets of the ${var.name} PostgreSQL database"
  subnet_ids  = var.subnet_ids
  tags        = local.tags
}

resource "aws_security_group" "database" {
  name        = "${var.name}-database"
  description = "PostgreSQL of ${var.name}: reachable only from the client security groups"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-database" })

  lifecycle {
    create_before_destroy = true
  }
}

# count, not for_each: the cluster's security group id is unknown until the cluster exists,
# and for_each keys must be known at plan time.
resource "aws_vpc_security_group_ingress_rule" "database" {
  count = length(var.client_security_group_ids)

  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from client security group ${count.index}"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = var.client_security_group_ids[count.index]
  tags                         = local.tags
}

# A new group per engine family (a major upgrade changes it), created before the old one goes.
resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-${local.database_family}-"
  family      = local.database_family
  description = "${var.name}: TLS required"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Statements slower than a second in the exported postgresql log.
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

# Created here rather than by RDS on first export, so they are encrypted and expire.
resource "aws_cloudwatch_log_group" "database" {
  for_each = toset(local.database_log_types)

  name              = "/aws/rds/instance/${local.database_identifier}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.data.arn
  tags              = local.tags
}

resource "aws_iam_role" "database_monitoring" {
  count = var.monitoring_interval > 0 ? 1 : 0

  name_prefix = "${var.name}-rds-monitoring-"
  description = "Enhanced Monitoring of the ${var.name} database"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "database_monitoring" {
  count = var.monitoring_interval > 0 ? 1 : 0

  role       = aws_iam_role.database_monitoring[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  identifier     = local.database_identifier
  engine         = "postgres"
  engine_version = var.database_engine_version
  instance_class = var.database_instance_class

  db_name                             = var.database_name
  username                            = var.database_username
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = aws_kms_key.data.arn
  iam_database_authentication_enabled = var.iam_database_authentication

  allocated_storage     = var.database_allocated_storage
  max_allocated_storage = var.database_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.data.arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.database.id]
  publicly_accessible    = false
  multi_az               = var.multi_az
  parameter_group_name   = aws_db_parameter_group.this.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  backup_retention_period   = var.backup_retention_days
  backup_window             = "03:00-04:00"
  maintenance_window        = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot     = true
  delete_automated_backups  = false
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = var.skip_final_snapshot
  final_snapshot_identifier = var.skip_final_snapshot ? null : "${local.database_identifier}-final"

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.data.arn
  performance_insights_retention_period = var.performance_insights_retention_days
  monitoring_interval                   = var.monitoring_interval
  monitoring_role_arn                   = var.monitoring_interval > 0 ? aws_iam_role.database_monitoring[0].arn : null
  enabled_cloudwatch_logs_exports       = local.database_log_types

  tags = local.tags

  # The log groups must exist first, or RDS creates unencrypted ones that never expire.
  depends_on = [aws_cloudwatch_log_group.database, aws_iam_role_policy_attachment.database_monitoring]
}
