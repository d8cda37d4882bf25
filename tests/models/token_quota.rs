//! The token quota's reference rules on a plain integer: the sequential model that the
//! quickcheck properties (`tests/budget_props.rs`) and the budget fuzz target compare against.

use valve::{CostClass, QuotaRule, TokenQuotaConfig};

/// The reference rules, on a plain integer.
pub struct QuotaModel {
    pub config: TokenQuotaConfig,
    pub balance: u32,
}

impl QuotaModel {
    fn cost(&self, class: CostClass) -> u32 {
        match class {
            CostClass::Transient => self.config.costs.transient,
            CostClass::Timeout => self.config.costs.timeout,
            CostClass::Throttling => self.config.costs.throttling,
        }
    }

    /// Tokens taken if granted.
    pub fn retry(&mut self, class: CostClass) -> Option<u32> {
        let cost = self.cost(class);
        match self.config.rule {
            QuotaRule::AboveThreshold => {
                let after = i64::from(self.balance) - i64::from(cost);
                let taken = self.balance.min(cost);
                self.balance = after.max(0) as u32;
                (after > i64::from(self.config.threshold)).then_some(taken)
            }
            QuotaRule::CostAvailable => {
                if cost > self.balance {
                    return None;
                }
                self.balance -= cost;
                Some(cost)
            }
            QuotaRule::ConsumeRemaining => {
                if self.balance == 0 {
                    return None;
                }
                let taken = self.balance.min(cost);
                self.balance -= taken;
                Some(taken)
            }
        }
    }

    pub fn success(&mut self, refund: Option<u32>) {
        let credit = match refund {
            Some(tokens) if self.config.refund_on_success => tokens,
            _ => self.config.success_credit,
        };
        self.balance = (u64::from(self.balance) + u64::from(credit))
            .min(u64::from(self.config.capacity)) as u32;
    }

    pub fn hedge(&self) -> bool {
        match self.config.rule {
            QuotaRule::AboveThreshold => self.balance > self.config.threshold,
            QuotaRule::CostAvailable => self.balance >= self.config.costs.transient,
            QuotaRule::ConsumeRemaining => self.balance > 0,
        }
    }
}
