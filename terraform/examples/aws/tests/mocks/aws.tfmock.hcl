# What the mocked AWS provider answers in this example's tests (mock_provider "aws" { source }).
# Identifiers that modules validate (vpc-, sg-, ARNs) get well-formed values; the rest are
# Terraform's generated strings.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition  = "aws"
    dns_suffix = "amazonaws.com"
  }
}

mock_data "aws_region" {
  defaults = {
    name = "eu-west-1"
  }
}

mock_data "aws_availability_zones" {
  defaults = {
    names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  }
}

mock_data "aws_iam_policy_document" {
  defaults = {
    json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }
}

# Every GPU instance type looks like a g5.xlarge: one NVIDIA A10G, x86_64.
mock_data "aws_ec2_instance_type" {
  defaults = {
    gpus                    = [{ count = 1, manufacturer = "NVIDIA", name = "A10G", memory_size = 24576 }]
    supported_architectures = ["x86_64"]
  }
}

mock_data "aws_secretsmanager_random_password" {
  defaults = {
    random_password = "MockRedisAuthTokenMockRedisAuthTokenMockRedisAuthTokenMockRedis"
  }
}

mock_resource "aws_vpc" {
  defaults = {
    id = "vpc-0123456789abcdef0"
  }
}

mock_resource "aws_subnet" {
  defaults = {
    id = "subnet-0123456789abcdef0"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/trainyard-mock"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/mock"
  }
}

mock_resource "aws_launch_template" {
  defaults = {
    id = "lt-0123456789abcdef0"
  }
}

mock_resource "aws_eks_cluster" {
  defaults = {
    vpc_config = {
      vpc_id                    = "vpc-0123456789abcdef0"
      cluster_security_group_id = "sg-0123456789abcdef0"
    }
    identity = [{
      oidc = [{ issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE" }]
    }]
    certificate_authority = [{ data = "Y2VydA==" }]
  }
}

mock_resource "aws_iam_openid_connect_provider" {
  defaults = {
    arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  }
}

mock_resource "aws_eks_node_group" {
  defaults = {
    resources = [{ autoscaling_groups = [{ name = "eks-gpu-asg" }], remote_access_security_group_id = "" }]
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    arn = "arn:aws:s3:::trainyard-data-123456789012"
  }
}

mock_resource "aws_db_instance" {
  defaults = {
    address            = "trainyard.abcdefghijkl.eu-west-1.rds.amazonaws.com"
    port               = 5432
    master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-mock-AbCdEf", kms_key_id = "", secret_status = "active" }]
  }
}

mock_resource "aws_elasticache_replication_group" {
  defaults = {
    primary_endpoint_address = "master.trainyard.abcdef.euw1.cache.amazonaws.com"
  }
}

mock_resource "aws_secretsmanager_secret" {
  defaults = {
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:trainyard/redis-auth-AbCdEf"
  }
}
