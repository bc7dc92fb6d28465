# Offline: every AWS call is mocked.
mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  # The provider validates ARN-typed arguments: give the resources whose ARN feeds another
  # resource well-formed mock ARNs.
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/trainyard-test-node"
    }
  }

  mock_resource "aws_launch_template" {
    defaults = {
      id = "lt-0123456789abcdef0"
    }
  }

  mock_resource "aws_eks_cluster" {
    defaults = {
      # Blocks are mocked as one object that fills every element's computed attributes.
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
}

variables {
  name                 = "trainyard-test"
  vpc_id               = "vpc-0123456789abcdef0"
  subnet_ids           = ["subnet-aaaa", "subnet-bbbb", "subnet-cccc"]
  admin_principal_arns = ["arn:aws:iam::123456789012:role/platform-admin", "arn:aws:iam::123456789012:role/break-glass"]
}

run "secrets_are_encrypted_with_a_rotated_kms_key" {
  command = apply

  assert {
    condition     = aws_eks_cluster.this.encryption_config[0].resources == toset(["secrets"])
    error_message = "Kubernetes secrets must be envelope-encrypted."
  }

  assert {
    condition     = aws_eks_cluster.this.encryption_config[0].provider[0].key_arn == aws_kms_key.this.arn
    error_message = "Secrets must be encrypted with the module's KMS key."
  }

  assert {
    condition     = aws_kms_key.this.enable_key_rotation
    error_message = "The KMS key must rotate."
  }

  assert {
    condition     = output.kms_key_arn == aws_kms_key.this.arn
    error_message = "kms_key_arn must expose the key."
  }
}

run "all_control_plane_log_types_go_to_an_encrypted_log_group" {
  command = apply

  assert {
    condition     = aws_eks_cluster.this.enabled_cluster_log_types == toset(["api", "audit", "authenticator", "controllerManager", "scheduler"])
    error_message = "All five control-plane log types must be enabled."
  }

  assert {
    condition     = aws_cloudwatch_log_group.cluster.name == "/aws/eks/trainyard-test/cluster" && aws_cloudwatch_log_group.cluster.kms_key_id == aws_kms_key.this.arn
    error_message = "The control-plane log group must be pre-created under EKS's name and encrypted."
  }

  assert {
    condition     = aws_cloudwatch_log_group.cluster.retention_in_days >= 365
    error_message = "Control-plane logs must be kept for at least a year."
  }
}

run "endpoint_is_private_by_default" {
  command = plan

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_public_access == false && aws_eks_cluster.this.vpc_config[0].endpoint_private_access == true
    error_message = "The API endpoint must be private unless endpoint_public_access is set."
  }

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].subnet_ids == toset(var.subnet_ids)
    error_message = "The control plane must use the given subnets."
  }
}

run "public_endpoint_is_limited_to_the_given_cidrs" {
  command = plan

  variables {
    endpoint_public_access = true
    public_access_cidrs    = ["203.0.113.0/24"]
  }

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_public_access && aws_eks_cluster.this.vpc_config[0].public_access_cidrs == toset(["203.0.113.0/24"])
    error_message = "A public endpoint must be restricted to public_access_cidrs."
  }
}

run "authentication_uses_access_entries_without_creator_admin" {
  command = plan

  assert {
    condition     = aws_eks_cluster.this.access_config[0].authentication_mode == "API" && aws_eks_cluster.this.access_config[0].bootstrap_cluster_creator_admin_permissions == false
    error_message = "Authentication must be API (access entries) with no implicit creator admin."
  }
}

run "admin_principals_get_cluster_admin_access_entries" {
  command = apply

  assert {
    condition     = toset([for e in aws_eks_access_entry.admin : e.principal_arn]) == toset(var.admin_principal_arns)
    error_message = "Each admin principal needs an access entry."
  }

  assert {
    condition     = alltrue([for a in aws_eks_access_policy_association.admin : a.policy_arn == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy" && a.access_scope[0].type == "cluster"])
    error_message = "Admin access entries must carry AmazonEKSClusterAdminPolicy at cluster scope."
  }

  assert {
    condition     = toset([for a in aws_eks_access_policy_association.admin : a.principal_arn]) == toset(var.admin_principal_arns)
    error_message = "Each admin principal needs a policy association."
  }
}

run "oidc_provider_trusts_the_cluster_issuer_for_sts" {
  command = apply

  assert {
    condition     = aws_iam_openid_connect_provider.this.url == "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    error_message = "The OIDC provider must point at the cluster's issuer."
  }

  assert {
    condition     = aws_iam_openid_connect_provider.this.client_id_list == toset(["sts.amazonaws.com"])
    error_message = "The OIDC provider audience must be sts.amazonaws.com."
  }

  assert {
    condition     = output.oidc_provider_arn == aws_iam_openid_connect_provider.this.arn && output.oidc_issuer_url == aws_eks_cluster.this.identity[0].oidc[0].issuer
    error_message = "The IRSA outputs must expose the provider and the issuer."
  }
}

run "system_nodes_require_imdsv2_and_encrypted_volumes" {
  command = plan

  assert {
    condition     = aws_launch_template.system.metadata_options[0].http_tokens == "required" && aws_launch_template.system.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "System nodes must require IMDSv2 and keep IMDS away from pods."
  }

  assert {
    condition     = aws_launch_template.system.block_device_mappings[0].ebs[0].encrypted == "true"
    error_message = "System node root volumes must be encrypted."
  }

  assert {
    condition     = aws_eks_node_group.system.scaling_config[0].min_size == 2 && aws_eks_node_group.system.scaling_config[0].max_size == 4 && aws_eks_node_group.system.scaling_config[0].desired_size == 2
    error_message = "System node group sizes must follow the variables."
  }
}

# Plan, not apply: the runs above applied the cluster, so its VPC is known in state and the
# postcondition fires while planning.
run "subnets_of_another_vpc_are_refused" {
  command = plan

  variables {
    vpc_id = "vpc-0fffffffffffffff0"
  }

  expect_failures = [aws_eks_cluster.this]
}

run "public_endpoint_without_cidrs_is_refused" {
  command = plan

  variables {
    endpoint_public_access = true
  }

  expect_failures = [var.public_access_cidrs]
}

run "public_endpoint_open_to_the_world_is_refused" {
  command = plan

  variables {
    endpoint_public_access = true
    public_access_cidrs    = ["0.0.0.0/0"]
  }

  expect_failures = [var.public_access_cidrs]
}

run "empty_admin_list_is_refused" {
  command = plan

  variables {
    admin_principal_arns = []
  }

  expect_failures = [var.admin_principal_arns]
}

run "desired_size_outside_min_max_is_refused" {
  command = plan

  variables {
    system_node_desired_size = 9
  }

  expect_failures = [var.system_node_desired_size]
}
