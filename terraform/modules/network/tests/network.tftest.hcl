# Offline: every AWS call is mocked. Data sources return fixed values so plans are deterministic.
mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1d"]
    }
  }

  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }

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

  # The provider validates ARN-typed arguments, so resources whose ARN feeds another
  # resource get well-formed mock ARNs.
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/vpc/trainyard-test/flow-logs"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/trainyard-test-flow-logs"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  name = "trainyard-test"
}

run "subnets_are_spread_over_az_count_zones" {
  command = plan

  assert {
    condition     = length(aws_subnet.private) == 3 && length(aws_subnet.public) == 3
    error_message = "Expected one private and one public subnet per AZ (3 by default)."
  }

  assert {
    condition     = toset(aws_subnet.private[*].availability_zone) == toset(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    error_message = "Private subnets must sit in the first az_count distinct availability zones."
  }

  assert {
    condition     = toset(aws_subnet.public[*].availability_zone) == toset(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    error_message = "Public subnets must sit in the first az_count distinct availability zones."
  }

  assert {
    condition     = length(distinct(concat(aws_subnet.private[*].cidr_block, aws_subnet.public[*].cidr_block))) == 6
    error_message = "Subnet CIDRs must not overlap."
  }

  assert {
    condition     = alltrue([for s in aws_subnet.public : s.map_public_ip_on_launch == false])
    error_message = "Public subnets must not hand out public IPs implicitly."
  }
}

run "subnets_carry_the_eks_load_balancer_role_tags" {
  command = plan

  variables {
    cluster_name = "trainyard-test"
  }

  assert {
    condition     = alltrue([for s in aws_subnet.public : s.tags["kubernetes.io/role/elb"] == "1"])
    error_message = "Public subnets must be tagged kubernetes.io/role/elb=1."
  }

  assert {
    condition     = alltrue([for s in aws_subnet.private : s.tags["kubernetes.io/role/internal-elb"] == "1"])
    error_message = "Private subnets must be tagged kubernetes.io/role/internal-elb=1."
  }

  assert {
    condition     = alltrue([for s in aws_subnet.private : s.tags["kubernetes.io/cluster/trainyard-test"] == "shared"])
    error_message = "Subnets must carry the cluster tag when cluster_name is given."
  }
}

run "az_count_picks_the_number_of_zones" {
  command = plan

  variables {
    az_count = 2
  }

  assert {
    condition     = toset(aws_subnet.private[*].availability_zone) == toset(["eu-west-1a", "eu-west-1b"])
    error_message = "az_count = 2 must create private subnets in exactly two zones."
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 2
    error_message = "One NAT gateway per AZ expected."
  }
}

run "availability_zones_pin_the_zones_in_order" {
  command = plan

  variables {
    az_count           = 2
    availability_zones = ["eu-west-1c", "eu-west-1a"]
  }

  assert {
    condition     = aws_subnet.private[*].availability_zone == ["eu-west-1c", "eu-west-1a"]
    error_message = "Explicit availability_zones must be used as given, in order."
  }
}

run "availability_zones_must_match_az_count" {
  command = plan

  variables {
    availability_zones = ["eu-west-1a", "eu-west-1b"]
  }

  expect_failures = [var.availability_zones]
}

run "one_nat_gateway_per_az_by_default" {
  command = apply

  assert {
    condition     = length(aws_nat_gateway.this) == 3 && length(aws_eip.nat) == 3
    error_message = "Expected one NAT gateway (and EIP) per AZ when single_nat_gateway is false."
  }

  assert {
    condition     = [for r in aws_route.private_nat : r.nat_gateway_id] == aws_nat_gateway.this[*].id
    error_message = "Each private route table must route through the NAT gateway of its own AZ."
  }

  assert {
    condition     = [for n in aws_nat_gateway.this : n.subnet_id] == aws_subnet.public[*].id
    error_message = "NAT gateways must live in the public subnets."
  }
}

run "single_nat_gateway_serves_every_private_subnet" {
  command = apply

  variables {
    single_nat_gateway = true
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 1
    error_message = "single_nat_gateway must create exactly one NAT gateway."
  }

  assert {
    condition     = length(aws_route.private_nat) == 3 && alltrue([for r in aws_route.private_nat : r.nat_gateway_id == aws_nat_gateway.this[0].id])
    error_message = "Every private route table must route through the single NAT gateway."
  }
}

run "s3_gateway_endpoint_is_on_the_private_route_tables" {
  command = apply

  assert {
    condition     = aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway" && aws_vpc_endpoint.s3.service_name == "com.amazonaws.eu-west-1.s3"
    error_message = "Expected an S3 gateway endpoint for the VPC's region."
  }

  assert {
    condition     = toset(aws_vpc_endpoint.s3.route_table_ids) == toset(aws_route_table.private[*].id)
    error_message = "The S3 endpoint must be attached to every private route table."
  }

  assert {
    condition     = output.s3_endpoint_id == aws_vpc_endpoint.s3.id && output.private_route_table_ids == aws_route_table.private[*].id
    error_message = "Outputs must expose the endpoint and the private route tables."
  }
}

run "flow_logs_capture_all_traffic_into_an_encrypted_log_group" {
  command = apply

  assert {
    condition     = aws_flow_log.this.vpc_id == aws_vpc.this.id && aws_flow_log.this.traffic_type == "ALL"
    error_message = "The VPC must have a flow log capturing ALL traffic."
  }

  assert {
    condition     = aws_flow_log.this.log_destination == aws_cloudwatch_log_group.flow_logs.arn
    error_message = "Flow logs must be delivered to the module's log group."
  }

  assert {
    condition     = aws_cloudwatch_log_group.flow_logs.kms_key_id == aws_kms_key.flow_logs.arn && aws_kms_key.flow_logs.enable_key_rotation
    error_message = "The flow log group must be encrypted with a rotated KMS key."
  }

  assert {
    condition     = aws_cloudwatch_log_group.flow_logs.retention_in_days >= 365
    error_message = "Flow logs must be kept for at least a year."
  }
}

run "default_security_group_allows_nothing" {
  command = plan

  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0
    error_message = "The default security group must have no rules."
  }
}

run "az_count_of_one_is_refused" {
  command = plan

  variables {
    az_count = 1
  }

  expect_failures = [var.az_count]
}

run "invalid_cidr_is_refused" {
  command = plan

  variables {
    cidr_block = "10.0.0.0/33"
  }

  expect_failures = [var.cidr_block]
}

run "uppercase_name_is_refused" {
  command = plan

  variables {
    name = "Trainyard"
  }

  expect_failures = [var.name]
}
