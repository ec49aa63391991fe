"""Bank gateway of the 一卡通 subsidy payment scheme."""
